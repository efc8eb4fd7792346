/**
 * Just enough of a DOM for the citation views under node: elements keep attributes,
 * listeners and children; text goes in as text nodes. Any HTML parsing entry point
 * (`innerHTML`, `outerHTML`, `insertAdjacentHTML`) throws, so a view that would hand
 * untrusted text to the HTML parser fails its test instead of passing silently.
 */

export class FakeText {
  constructor(public data: string) {}
  parentNode: FakeElement | null = null;
  get textContent(): string {
    return this.data;
  }
}

export class FakeElement {
  constructor(readonly tagName: string) {}
  readonly attributes = new Map<string, string>();
  readonly listeners = new Map<string, ((event: unknown) => void)[]>();
  children: (FakeElement | FakeText)[] = [];
  parentNode: FakeElement | null = null;
  className = '';

  setAttribute(name: string, value: string): void {
    if (/^on/i.test(name)) {
      throw new Error(`event handler attribute ${name} set from data`);
    }
    this.attributes.set(name, String(value));
  }

  getAttribute(name: string): string | null {
    return this.attributes.get(name) ?? null;
  }

  addEventListener(type: string, listener: (event: unknown) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  dispatch(type: string, event: Record<string, unknown>): void {
    for (const l of this.listeners.get(type) ?? []) {
      l(event);
    }
  }

  append(...nodes: (FakeElement | FakeText | string)[]): void {
    for (const node of nodes) {
      const child = typeof node === 'string' ? new FakeText(node) : node;
      child.parentNode = this;
      this.children.push(child);
    }
  }

  replaceChildren(...nodes: (FakeElement | FakeText)[]): void {
    this.children = [];
    this.append(...nodes);
  }

  get textContent(): string {
    return this.children.map(c => c.textContent).join('');
  }

  set innerHTML(_: string) {
    throw new Error('innerHTML used');
  }

  set outerHTML(_: string) {
    throw new Error('outerHTML used');
  }

  insertAdjacentHTML(): void {
    throw new Error('insertAdjacentHTML used');
  }

  /** Every element below (depth first), this one included. */
  all(): FakeElement[] {
    return [this, ...this.children.flatMap(c => (c instanceof FakeElement ? c.all() : []))];
  }

  /** Every text node below. */
  texts(): FakeText[] {
    return this.children.flatMap(c => (c instanceof FakeElement ? c.texts() : [c]));
  }
}

/** Installs the fake as `document` for the duration of `body`. */
export function withFakeDocument<T>(body: () => T): T {
  const g = globalThis as Record<string, unknown>;
  const before = g.document;
  g.document = {
    createElement: (tag: string) => new FakeElement(tag.toUpperCase()),
    createTextNode: (text: string) => new FakeText(text)
  };
  try {
    return body();
  } finally {
    g.document = before;
  }
}
