/**
 * A tiny element builder for the views: `h('button', {class: 'x', onclick}, 'Label')`.
 * Text goes in as text nodes, never as HTML; the only HTML the views insert comes
 * from JupyterLab's rendermime, through the chat sanitizer.
 */

type Child = Node | string | null | undefined | false;
type Handler = (event: Event) => void;

export interface IAttrs {
  [name: string]: string | number | boolean | Handler | null | undefined;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: IAttrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) {
      continue;
    }
    if (typeof value === 'function') {
      el.addEventListener(name.replace(/^on/, ''), value as EventListener);
    } else if (name === 'class') {
      el.className = String(value);
    } else if (value === true) {
      el.setAttribute(name, '');
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el: Element, children: (Child | Child[])[]): void {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    el.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
}

/** Replaces the children of `el`. */
export function fill(el: Element, ...children: (Child | Child[])[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A JupyterLab-styled button. */
export function button(
  label: string,
  onclick: () => void,
  options: { title?: string; kind?: 'accept' | 'warn' | 'reject' | 'plain'; class?: string } = {}
): HTMLButtonElement {
  const kind = options.kind ?? 'plain';
  const classes = ['jp-Button', 'aiide-Button', `aiide-Button-${kind}`];
  if (kind === 'accept') {
    classes.push('jp-mod-accept');
  } else if (kind === 'warn' || kind === 'reject') {
    classes.push('jp-mod-warn');
  }
  if (options.class) {
    classes.push(options.class);
  }
  return h(
    'button',
    {
      type: 'button',
      class: classes.join(' '),
      title: options.title,
      onclick: () => onclick()
    },
    label
  );
}
