/**
 * The sanitizer for model output. Model text is untrusted (a prompt injection can make
 * it say anything), so on top of JupyterLab's sanitizer (no script, no event handlers,
 * no `javascript:` URLs) it keeps only the tags Markdown produces: no images, media or
 * SVG (a remote image URL can carry data out), no forms or buttons, and no attributes
 * but links' `href` / `title` and code's `class` — which also removes JupyterLab's
 * `data-commandlinker-*` attributes, so a button in an answer cannot run a command.
 */
import type { IRenderMime } from '@jupyterlab/rendermime';

export const CHAT_TAGS: readonly string[] = [
  'a', 'b', 'blockquote', 'br', 'code', 'dd', 'del', 'details', 'div', 'dl', 'dt', 'em',
  'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'i', 'ins', 'kbd', 'li', 'mark', 'ol', 'p',
  'pre', 's', 'span', 'strike', 'strong', 'sub', 'summary', 'sup', 'table', 'tbody',
  'td', 'tfoot', 'th', 'thead', 'tr', 'u', 'ul'
];

export const CHAT_ATTRIBUTES: Readonly<Record<string, string[]>> = {
  a: ['href', 'title', 'rel'],
  code: ['class'],
  pre: ['class'],
  span: ['class'],
  td: ['align'],
  th: ['align']
};

/** Wraps JupyterLab's sanitizer with the stricter rules for model output. */
export function createChatSanitizer(base: IRenderMime.ISanitizer): IRenderMime.ISanitizer {
  return {
    sanitize: (dirty: string, options?: IRenderMime.ISanitizerOptions): string =>
      base.sanitize(dirty, {
        ...options,
        allowedTags: [...CHAT_TAGS],
        allowedAttributes: { ...CHAT_ATTRIBUTES }
      }),
    getAutolink: () => base.getAutolink?.() ?? true,
    allowNamedProperties: false,
    allowCommandLinker: false
  };
}
