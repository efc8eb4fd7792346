/**
 * An answer rendered as Markdown through JupyterLab's rendermime (a registry clone that
 * uses the chat sanitizer; the model is untrusted), re-rendered at most once per frame
 * while tokens stream in, with action buttons on its code blocks once complete.
 */
import { MimeModel, type IRenderMime, type IRenderMimeRegistry } from '@jupyterlab/rendermime';

import type { ICitation } from '../api/protocol';
import { citationList, citedIn, type ICitationLinks } from '../knowledge/citations';
import { linkifyCitations } from '../knowledge/linkify';
import { button, h } from '../ui/dom';
import type { ICodeActions } from './codeActions';
import { copyButton } from './copyButton';

const MIME = 'text/markdown';

export class AnswerView {
  constructor(
    rendermime: IRenderMimeRegistry,
    actions: ICodeActions,
    links: ICitationLinks | null = null
  ) {
    this._renderer = rendermime.createRenderer(MIME);
    this._actions = actions;
    this._links = links;
    this.node = h('div', { class: 'aiide-Answer' });
    this._sources = h('div', { class: 'aiide-Answer-sources' });
    this.node.append(this._renderer.node, this._sources);
  }

  readonly node: HTMLElement;

  /**
   * Shows `text`: as plain text at once when nothing is rendered yet (the first token
   * paints in the next frame), as Markdown from the next frame on (coalescing bursts).
   */
  update(text: string, streaming: boolean, citations: readonly ICitation[] = []): void {
    this._citations = citations;
    if (!this._rendered && !this._rendering) {
      this._renderer.node.textContent = text;
    }
    this._text = text;
    this._streaming = streaming;
    this.node.setAttribute('aria-busy', streaming ? 'true' : 'false');
    this.node.classList.toggle('aiide-mod-streaming', streaming);
    if (this._rendering) {
      this._dirty = true; // rendered again when the current render ends
    } else if (!this._scheduled) {
      this._scheduled = true;
      requestAnimationFrame(() => void this._render());
    }
  }

  dispose(): void {
    this._disposed = true;
    this._renderer.dispose();
  }

  private async _render(): Promise<void> {
    this._scheduled = false;
    if (this._disposed) {
      return;
    }
    this._rendering = true;
    this._dirty = false;
    const text = this._text;
    const streaming = this._streaming;
    try {
      await this._renderer.renderModel(
        new MimeModel({ data: { [MIME]: text }, trusted: false })
      );
      this._rendered = true;
      if (!streaming) {
        this._decorate();
        this._cite(text);
      }
    } catch (error) {
      console.warn('aiide: could not render an answer', error);
      this._renderer.node.textContent = text;
    } finally {
      this._rendering = false;
    }
    if (this._dirty && !this._disposed) {
      this._scheduled = true;
      requestAnimationFrame(() => void this._render());
    }
  }

  /**
   * The citations the answer quotes (`[label]`) become links where they stand, and are
   * listed once more under the answer as its sources.
   */
  private _cite(text: string): void {
    const links = this._links;
    const cited = links ? citedIn(text, this._citations) : [];
    if (links && cited.length) {
      linkifyCitations(this._renderer.node, cited, links.open, links.baseUrl);
    }
    this._sources.replaceChildren();
    const list = links ? citationList(cited, links.open, links.baseUrl) : null;
    if (list) {
      this._sources.append(list);
    }
  }

  /** Copy / insert / replace / run buttons above each code block. */
  private _decorate(): void {
    for (const pre of Array.from(this._renderer.node.querySelectorAll('pre'))) {
      const code = (pre.querySelector('code') ?? pre).textContent ?? '';
      const bar = h(
        'div',
        { class: 'aiide-CodeActions', role: 'toolbar', 'aria-label': 'Code block actions' },
        copyButton(() => this._actions.copy(code)),
        button('Insert below', () => this._actions.insertBelow(code), {
          title: 'Insert as a new cell below the active cell'
        }),
        button('Replace cell', () => this._actions.replaceCell(code), {
          title: 'Replace the source of the active cell'
        }),
        button('Run', () => this._actions.run(code), {
          title: 'Insert below the active cell and run it'
        })
      );
      pre.before(bar);
    }
  }

  private readonly _renderer: IRenderMime.IRenderer;
  private readonly _actions: ICodeActions;
  private readonly _links: ICitationLinks | null;
  private readonly _sources: HTMLElement;
  private _citations: readonly ICitation[] = [];
  private _text = '';
  private _streaming = false;
  private _scheduled = false;
  private _rendering = false;
  private _dirty = false;
  private _disposed = false;
  private _rendered = false;
}

