/**
 * A real DOM (happy-dom) for the tests of whole views: focus, form fields, events. Import
 * it before the view: Lumino reads `navigator` when its modules load. The window's globals
 * are installed where node has none; node's own `fetch`, `Request` and `Response` stay
 * (the fake servers of the tests are written against them).
 */
import { Window } from 'happy-dom';

export const window = new Window({ url: 'http://lab.test/' });
/** The page's document, as the views see it (the DOM's own types). */
export const document = window.document as unknown as Document;

/** Node has its own of these; the views need the DOM's (events dispatched on elements). */
const DOM_OWN = ['Event', 'EventTarget', 'CustomEvent', 'navigator'];

const global = globalThis as Record<string, unknown>;
const source = window as unknown as Record<string, unknown>;
for (const name of Object.getOwnPropertyNames(window)) {
  if ((name in global && !DOM_OWN.includes(name)) || name.startsWith('_')) {
    continue; // node's fetch, Request, Response, URL, timers… stay
  }
  const value = source[name];
  Object.defineProperty(global, name, {
    configurable: true,
    writable: true,
    value: typeof value === 'function' && /^[a-z]/.test(name) ? value.bind(window) : value
  });
}
Object.defineProperty(global, 'window', { configurable: true, writable: true, value: window });

/** What a user's typing does to a text field: focus, the new value, an `input` event. */
export function typeInto(field: HTMLInputElement, text: string): void {
  field.focus();
  field.value = text;
  field.dispatchEvent(new InputEvent('input', { bubbles: true }));
}

/** Resolves once `el`'s text is `text` (now or after later changes). */
export function textBecomes(el: Element, text: string): Promise<void> {
  return new Promise(resolve => {
    if (el.textContent === text) {
      return resolve();
    }
    const watch = new MutationObserver(() => {
      if (el.textContent === text) {
        watch.disconnect();
        resolve();
      }
    });
    watch.observe(el, { childList: true, characterData: true, subtree: true });
  });
}
