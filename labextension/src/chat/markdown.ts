/**
 * An answer rendered as Markdown through JupyterLab's rendermime (a registry clone that
 * uses the chat sanitizer; the model is untrusted), re-rendered at most once per frame
 * while tokens stream in, with action buttons on its code blocks once complete.
 */
import { MimeModel, type IRenderMime, type IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { button, h } from '../ui/dom';
import type { ICodeActions } from './codeActions';

const MIME = 'text/markdown';

export class AnswerView {
  constructor(rendermime: IRenderMimeRegistry, actions: ICodeActions) {
    this._renderer = rendermime.createRenderer(MIME);
    this._actions = actions;
    this.node = h('div', { class: 'aiide-Answer' });
    this.node.append(this._renderer.node);
  }

  readonly node: HTMLElement;

  /**
   * Shows `text`: as plain text at once when nothing is rendered yet (the first token
   * paints in the next frame), as Markdown from the next frame on (coalescing bursts).
   */
  update(text: string, streaming: boolean): void {
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

  /** Copy / insert / replace / run buttons above each code block. */
  private _decorate(): void {
    for (const pre of Array.from(this._renderer.node.querySelectorAll('pre'))) {
      const code = (pre.querySelector('code') ?? pre).textContent ?? '';
      const bar = h(
        'div',
        { class: 'aiide-CodeActions', role: 'toolbar', 'aria-label': 'Code block actions' },
        button('Copy', () => this._actions.copy(code), { title: 'Copy to the clipboard' }),
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
  private _text = '';
  private _streaming = false;
  private _scheduled = false;
  private _rendering = false;
  private _dirty = false;
  private _disposed = false;
  private _rendered = false;
}
