/**
 * The context a question carries: the document the user works in — the active notebook
 * (its active cell) or, when a file editor was focused last, that file (its cursor line)
 * — and the selected text. Also saves that document before a question, since the agent
 * reads files from disk.
 */
import type { CodeEditor } from '@jupyterlab/codeeditor';
import type { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import type { ISignal } from '@lumino/signaling';
import { Signal } from '@lumino/signaling';
import type { Widget } from '@lumino/widgets';

import type { IChatContext } from '../api/protocol';

/** The main area's current widget, as the lab shell tells it. */
export interface IMainArea {
  readonly currentWidget: Widget | null;
  readonly currentChanged: ISignal<unknown, unknown>;
}

/** A document widget whose content is a text editor (a `.py` file, a script). */
export interface IFileEditorLike extends Widget {
  context: {
    path: string;
    model: { dirty: boolean };
    isReady: boolean;
    save(): Promise<void>;
    pathChanged: ISignal<unknown, string>;
  };
  content: { editor: CodeEditor.IEditor };
}

/** Duck-typed so the chat needs no file-editor package: a document with a text editor. */
export function asFileEditor(widget: Widget | null): IFileEditorLike | null {
  const w = widget as Partial<IFileEditorLike> | null;
  const editor = w?.content?.editor;
  return w && typeof w.context?.path === 'string' && editor && typeof editor.getCursorPosition === 'function'
    ? (w as IFileEditorLike)
    : null;
}

export class ActiveContext {
  constructor(tracker: INotebookTracker | null, mainArea: IMainArea | null = null) {
    this._tracker = tracker;
    this._mainArea = mainArea;
    tracker?.currentChanged.connect(this._follow, this);
    tracker?.activeCellChanged.connect(this._emit, this);
    mainArea?.currentChanged.connect(this._followMain, this);
    this._follow();
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The notebook questions are about; null while a file editor is the document in use. */
  get notebook(): NotebookPanel | null {
    return this.file ? null : (this._tracker?.currentWidget ?? null);
  }

  /** The file editor focused last in the main area, while it is still open. */
  get file(): IFileEditorLike | null {
    const file = this._file;
    return file && !file.isDisposed ? file : null;
  }

  /** "analysis.ipynb · cell 3", "etl.py · line 12", or a hint when nothing is open. */
  label(): string {
    const file = this.file;
    if (file) {
      const selection = editorSelection(file.content.editor);
      return (
        `Context: ${file.context.path} · line ${file.content.editor.getCursorPosition().line + 1}` +
        (selection ? ` · ${selection.length} selected characters` : '')
      );
    }
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
    const file = this.file;
    if (file) {
      const editor = file.content.editor;
      const selection = editorSelection(editor);
      return {
        file: file.context.path,
        line: editor.getCursorPosition().line + 1,
        ...(selection ? { selection } : {})
      };
    }
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

  /** Saves the document in use when it has unsaved changes. */
  async save(): Promise<void> {
    const context = this.file?.context ?? this.notebook?.context;
    if (context && context.model.dirty && context.isReady) {
      try {
        await context.save();
      } catch (error) {
        console.warn('aiide: could not save the document before asking', error);
      }
    }
  }

  dispose(): void {
    this._watch(null);
    this._setFile(null);
    this._tracker?.currentChanged.disconnect(this._follow, this);
    this._tracker?.activeCellChanged.disconnect(this._emit, this);
    this._mainArea?.currentChanged.disconnect(this._followMain, this);
    Signal.clearData(this);
  }

  private _selection(panel: NotebookPanel): string {
    const editor = panel.content.activeCell?.editor;
    return editor ? editorSelection(editor) : '';
  }

  private _emit(): void {
    this._changed.emit();
  }

  /** A new active notebook; its renames change the context line too. */
  private _follow(): void {
    this._watch(this.file ?? this.notebook);
    this._emit();
  }

  /**
   * The main area changed: a file editor becomes the document in use, a notebook takes
   * over from it; anything else (a launcher, a CSV viewer) leaves the choice as it was.
   */
  private _followMain(): void {
    const current = this._mainArea?.currentWidget ?? null;
    const file = asFileEditor(current);
    if (file) {
      this._setFile(file);
    } else if (current && this._tracker?.has(current)) {
      this._setFile(null);
    } else {
      return;
    }
    this._follow();
  }

  /** The file in use; its cursor moves change the context line ("line 12"). */
  private _setFile(file: IFileEditorLike | null): void {
    this._file?.content.editor.model.selections?.changed.disconnect(this._emit, this);
    this._file = file;
    file?.content.editor.model.selections?.changed.connect(this._emit, this);
  }

  private _watch(doc: { context: { pathChanged: ISignal<unknown, string> } } | null): void {
    this._watched?.context.pathChanged.disconnect(this._emit, this);
    this._watched = doc;
    this._watched?.context.pathChanged.connect(this._emit, this);
  }

  private _watched: { context: { pathChanged: ISignal<unknown, string> } } | null = null;
  private _file: IFileEditorLike | null = null;
  private readonly _mainArea: IMainArea | null;

  private readonly _tracker: INotebookTracker | null;
  private readonly _changed = new Signal<this, void>(this);
}

function editorSelection(editor: CodeEditor.IEditor): string {
  const { start, end } = editor.getSelection();
  const from = editor.getOffsetAt(start);
  const to = editor.getOffsetAt(end);
  return from === to ? '' : editor.model.sharedModel.getSource().slice(Math.min(from, to), Math.max(from, to));
}
