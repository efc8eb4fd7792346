/**
 * The context a question carries: the active notebook (the chat follows whichever
 * notebook the user works in), its active cell, and the selected text. Also saves that
 * notebook before a question, since the agent reads notebooks from disk.
 */
import type { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Signal, type ISignal } from '@lumino/signaling';

import type { IChatContext } from '../api/protocol';

export class ActiveContext {
  constructor(tracker: INotebookTracker | null) {
    this._tracker = tracker;
    tracker?.currentChanged.connect(this._follow, this);
    tracker?.activeCellChanged.connect(this._emit, this);
    this._follow();
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get notebook(): NotebookPanel | null {
    return this._tracker?.currentWidget ?? null;
  }

  /** "analysis.ipynb · cell 3", or a hint when no notebook is open. */
  label(): string {
    const panel = this.notebook;
    if (!panel) {
      return 'No notebook open: questions carry no notebook context.';
    }
    const index = panel.content.activeCellIndex;
    const selection = this._selection(panel);
    return (
      `Context: ${panel.context.path} · cell ${index + 1}` +
      (selection ? ` · ${selection.length} selected characters` : '')
    );
  }

  context(): IChatContext {
    const panel = this.notebook;
    if (!panel) {
      return {};
    }
    const cell = panel.content.activeCell;
    const selection = this._selection(panel);
    return {
      notebook: panel.context.path,
      ...(cell ? { cell_id: cell.model.id } : {}),
      ...(selection ? { selection } : {})
    };
  }

  /** Saves the active notebook when it has unsaved changes. */
  async save(): Promise<void> {
    const panel = this.notebook;
    if (panel && panel.context.model.dirty && panel.context.isReady) {
      try {
        await panel.context.save();
      } catch (error) {
        console.warn('aiide: could not save the notebook before asking', error);
      }
    }
  }

  dispose(): void {
    this._watched?.context.pathChanged.disconnect(this._emit, this);
    this._tracker?.currentChanged.disconnect(this._follow, this);
    this._tracker?.activeCellChanged.disconnect(this._emit, this);
    Signal.clearData(this);
  }

  private _selection(panel: NotebookPanel): string {
    const editor = panel.content.activeCell?.editor;
    if (!editor) {
      return '';
    }
    const { start, end } = editor.getSelection();
    const from = editor.getOffsetAt(start);
    const to = editor.getOffsetAt(end);
    return from === to ? '' : editor.model.sharedModel.getSource().slice(Math.min(from, to), Math.max(from, to));
  }

  private _emit(): void {
    this._changed.emit();
  }

  /** A new active notebook; its renames change the context line too. */
  private _follow(): void {
    this._watched?.context.pathChanged.disconnect(this._emit, this);
    this._watched = this.notebook;
    this._watched?.context.pathChanged.connect(this._emit, this);
    this._emit();
  }

  private _watched: NotebookPanel | null = null;

  private readonly _tracker: INotebookTracker | null;
  private readonly _changed = new Signal<this, void>(this);
}
