/** The Copy button of an answer's code blocks. */
import { button } from '../ui/dom';

/** How long "Copied" stays on the button before it reads "Copy" again. */
export const COPIED_MS = 1500;

/** A Copy button that says "Copied" for a moment where the user looks, not in a toast. */
export function copyButton(copy: () => void): HTMLButtonElement {
  const node = button(
    'Copy',
    () => {
      copy();
      node.textContent = 'Copied';
      window.setTimeout(() => {
        node.textContent = 'Copy';
      }, COPIED_MS);
    },
    { title: 'Copy to the clipboard' }
  );
  return node;
}
