/**
 * What the buttons on a code block of an answer do: copy, insert as a new cell below
 * the active one, replace the active cell, or insert and run. These are the user's own
 * clicks on the notebook they look at, so they act at once (and undo like any edit).
 */
import { Clipboard, Notification } from '@jupyterlab/apputils';
import { NotebookActions, type INotebookTracker, type NotebookPanel } from '@jupyterlab/notebook';

export interface ICodeActions {
  copy(code: string): void;
  insertBelow(code: string): void;
  replaceCell(code: string): void;
  run(code: string): void;
}

export class NotebookCodeActions implements ICodeActions {
  constructor(private readonly _tracker: INotebookTracker | null) {}

  copy(code: string): void {
    // Said on the button itself (AnswerView): a toast sat over the chat's Send button.
    Clipboard.copyToSystem(code);
  }

  insertBelow(code: string): void {
    const panel = this._notebook();
    if (panel) {
      this._insert(panel, code);
    }
  }

  replaceCell(code: string): void {
    const cell = this._notebook()?.content.activeCell;
    if (cell) {
      cell.model.sharedModel.setSource(code);
    }
  }

  run(code: string): void {
    const panel = this._notebook();
    if (panel) {
      this._insert(panel, code);
      void NotebookActions.run(panel.content, panel.sessionContext);
    }
  }

  private _insert(panel: NotebookPanel, code: string): void {
    NotebookActions.insertBelow(panel.content);
    panel.content.activeCell?.model.sharedModel.setSource(code);
  }

  private _notebook(): NotebookPanel | null {
    const panel = this._tracker?.currentWidget ?? null;
    if (!panel) {
      Notification.warning('Open a notebook first: the code goes into its active cell.', {
        autoClose: 4000
      });
    }
    return panel;
  }
}
