/**
 * Remote resources behind a click. Markdown or HTML from a model or a sandboxed kernel
 * can name any URL; an image, video or style sheet that loads by itself is a beacon that
 * carries data out (the kernel has no network, the browser does) or a GET the user never
 * chose. After sanitizing, every element that would fetch something not inline (`data:`,
 * `blob:`) becomes a button that shows the element only when clicked; style attributes or
 * sheets that name a URL lose it; command-linker attributes (a click running a lab command)
 * and form targets are dropped.
 *
 * The rewrite runs on the sanitized HTML string inside a `<template>`, whose document has
 * no browsing context: nothing in it loads while it is rewritten.
 */
import type { IRenderMime } from '@jupyterlab/rendermime';

import { CHAT_ATTRIBUTES, CHAT_TAGS } from '../chat/sanitizer';

/** The class of a placeholder; its `data-aiide-html` holds the element it stands for. */
export const PLACEHOLDER_CLASS = 'aiide-RemoteResource';

/**
 * Marks the placeholders this page made. The sanitizers drop unknown `data-` attributes
 * already; the nonce makes sure a look-alike button in an output can never have its
 * "stored element" inserted by a click, whatever a sanitizer lets through.
 */
const NONCE = Array.from(globalThis.crypto.getRandomValues(new Uint32Array(4)), n =>
  n.toString(36)
).join('');

const LOADING_ATTRIBUTES = ['src', 'srcset', 'poster', 'background', 'data', 'href'];
const LOADING_TAGS = 'img, video, audio, source, track, input, picture, image, object, embed, link';
const DROPPED_ATTRIBUTES = [
  'data-commandlinker-command',
  'data-commandlinker-args',
  'action',
  'formaction',
  'ping'
];

/** Cheap test before any parsing: most outputs (tables, text) name no resource at all. */
const MAY_LOAD =
  /\b(src|srcset|poster|background|data|href|action|formaction|ping|data-commandlinker-[a-z]+)\s*=|url\(|@import|<(link|script|meta|base)\b/i;

/** Whether `url` loads without leaving the page (inline data the output already holds). */
export function isInline(url: string): boolean {
  return /^\s*(data|blob):/i.test(url);
}

/** A URL of a CSS text that is not inline. */
const CSS_URL = /url\(\s*(['"]?)([^'")]*)\1\s*\)|@import\b[^;]*;?/gi;

function cssNamesRemote(css: string): boolean {
  for (const match of css.matchAll(CSS_URL)) {
    if (match[0].startsWith('@') || !isInline(match[2] ?? '')) {
      return true;
    }
  }
  return false;
}

function stripCssUrls(css: string): string {
  return css.replace(CSS_URL, (whole: string, _quote: string, url: string | undefined) => {
    if (whole.startsWith('@')) {
      return ''; // @import of a sheet
    }
    return isInline(url ?? '') ? whole : 'none';
  });
}

/** The host a placeholder names ("example.com"), or the path for a relative URL. */
export function describeUrl(url: string): string {
  const trimmed = url.trim();
  const match = /^(?:[a-z][a-z0-9+.-]*:)?\/\/([^/?#]+)/i.exec(trimmed);
  if (match) {
    return match[1];
  }
  return trimmed.length > 60 ? `${trimmed.slice(0, 57)}…` : trimmed;
}

function remoteUrlOf(el: Element): string | null {
  for (const name of LOADING_ATTRIBUTES) {
    const value = el.getAttribute(name);
    if (value === null) {
      continue;
    }
    if (name === 'href' && el.localName !== 'link' && el.localName !== 'image') {
      continue; // a link's href loads nothing until the user follows it
    }
    if (name === 'srcset' ? value.trim() !== '' : !isInline(value)) {
      return name === 'srcset' ? (value.trim().split(/\s+/)[0] ?? value) : value;
    }
  }
  return null;
}

/**
 * `html` with every non-inline resource behind a click-to-load placeholder. Returns the
 * string unchanged (no parsing) when nothing in it can load or act.
 */
export function placeholdRemote(html: string, doc: Document = document): string {
  if (!MAY_LOAD.test(html)) {
    return html;
  }
  const template = doc.createElement('template');
  template.innerHTML = html;
  const root = template.content;
  // The sanitizer removes these already; an output must never carry them in place.
  for (const el of Array.from(root.querySelectorAll('script, style, link, meta, base'))) {
    if (el.localName === 'style' && !cssNamesRemote(el.textContent ?? '')) {
      continue;
    }
    if (el.localName === 'style') {
      el.textContent = stripCssUrls(el.textContent ?? '');
      continue;
    }
    el.remove();
  }
  for (const el of Array.from(root.querySelectorAll('[style]'))) {
    const style = el.getAttribute('style') ?? '';
    if (cssNamesRemote(style)) {
      el.setAttribute('style', stripCssUrls(style));
    }
  }
  for (const el of Array.from(root.querySelectorAll('*'))) {
    for (const name of DROPPED_ATTRIBUTES) {
      el.removeAttribute(name);
    }
  }
  // Outermost first: a <video> with remote <source>s becomes one placeholder.
  for (const el of Array.from(root.querySelectorAll(LOADING_TAGS))) {
    if (!root.contains(el)) {
      continue; // inside an element already replaced
    }
    const inner = el.querySelector('[src]');
    const url = remoteUrlOf(el) ?? (inner ? remoteUrlOf(inner) : null);
    if (url === null) {
      continue;
    }
    const kind = el.localName === 'img' || el.localName === 'picture' ? 'image' : el.localName;
    const button = doc.createElement('button');
    button.className = PLACEHOLDER_CLASS;
    button.setAttribute('type', 'button');
    // Encoded: the stored markup is inert text, not even markup-looking.
    button.setAttribute('data-aiide-html', encodeURIComponent(el.outerHTML));
    button.setAttribute('data-aiide-nonce', NONCE);
    button.setAttribute('title', `Load ${kind} from ${url.trim()}`);
    const alt = el.getAttribute('alt');
    button.textContent = `Load ${kind} from ${describeUrl(url)}${alt ? ` (${alt})` : ''}`;
    el.replaceWith(button);
  }
  return template.innerHTML;
}

/**
 * Clicks on placeholders under `host` load what they stand for (once, by the user's
 * choice). Relative URLs go through the renderer's resolver, as JupyterLab's own do.
 */
export function wirePlaceholders(
  host: HTMLElement,
  resolver: IRenderMime.IResolver | null
): void {
  host.addEventListener('click', event => {
    const target = event.target as Element | null;
    const button = target?.closest?.(`button.${PLACEHOLDER_CLASS}`);
    if (!button || !host.contains(button) || button.getAttribute('data-aiide-nonce') !== NONCE) {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
    void load(button as HTMLElement, resolver);
  });
}

async function load(button: HTMLElement, resolver: IRenderMime.IResolver | null): Promise<void> {
  const template = document.createElement('template');
  template.innerHTML = decodeURIComponent(button.getAttribute('data-aiide-html') ?? '');
  for (const el of Array.from(template.content.querySelectorAll('[src]'))) {
    const src = el.getAttribute('src') ?? '';
    if (resolver && resolver.isLocal?.(src)) {
      try {
        el.setAttribute('src', await resolver.getDownloadUrl(await resolver.resolveUrl(src)));
      } catch {
        // left as written: the browser resolves it against the page
      }
    }
  }
  button.replaceWith(template.content);
}

/** JupyterLab's sanitizer for sandboxed output, then the placeholders. */
export function createOutputSanitizer(base: IRenderMime.ISanitizer): IRenderMime.ISanitizer {
  return {
    sanitize: (dirty: string, options?: IRenderMime.ISanitizerOptions): string =>
      placeholdRemote(base.sanitize(dirty, options)),
    getAutolink: () => base.getAutolink?.() ?? true,
    allowNamedProperties: false,
    allowCommandLinker: false
  };
}

/**
 * The chat's rules for model text (Markdown's tags only, no handlers, no command linker)
 * plus images, which become click-to-load placeholders.
 */
export function createModelTextSanitizer(base: IRenderMime.ISanitizer): IRenderMime.ISanitizer {
  return {
    sanitize: (dirty: string, options?: IRenderMime.ISanitizerOptions): string =>
      placeholdRemote(
        base.sanitize(dirty, {
          ...options,
          allowedTags: [...CHAT_TAGS, 'img'],
          allowedAttributes: { ...CHAT_ATTRIBUTES, img: ['src', 'alt', 'title'] }
        })
      ),
    getAutolink: () => base.getAutolink?.() ?? true,
    allowNamedProperties: false,
    allowCommandLinker: false
  };
}
