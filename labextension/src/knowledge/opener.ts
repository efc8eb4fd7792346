/**
 * Opens a citation: the file in the lab, then the cell (a notebook: selected, scrolled
 * into view) or the line (a text editor: cursor there, revealed).
 */
import type { JupyterFrontEnd } from '@jupyterlab/application';
import { NotebookPanel } from '@jupyterlab/notebook';
import type { Widget } from '@lumino/widgets';

import { cellIndexFor, type ICitationTarget } from './citations';

interface IPosition {
  line: number;
  column: number;
}

/** What a text editor widget offers (FileEditor's `editor`), without depending on it. */
interface IEditorLike {
  setCursorPosition(position: IPosition): void;
  revealPosition?(position: IPosition): void;
  focus(): void;
  lineCount?: number;
}

function editorOf(widget: Widget): IEditorLike | null {
  const content = (widget as unknown as { content?: { editor?: unknown } }).content;
  const editor = content?.editor as IEditorLike | undefined;
  return editor && typeof editor.setCursorPosition === 'function' ? editor : null;
}

export async function openCitation(app: JupyterFrontEnd, target: ICitationTarget): Promise<void> {
  const widget = (await app.commands.execute('docmanager:open', { path: target.path })) as
    | Widget
    | undefined;
  if (!widget) {
    return;
  }
  app.shell.activateById(widget.id);
  const context = (widget as unknown as { context?: { ready: Promise<void> } }).context;
  await context?.ready;
  if (widget instanceof NotebookPanel) {
    await widget.revealed;
    const notebook = widget.content;
    const index = cellIndexFor(
      notebook.widgets.map(c => c.model.id),
      target
    );
    if (index < 0) {
      return;
    }
    notebook.deselectAll();
    notebook.mode = 'command';
    notebook.activeCellIndex = index;
    await notebook.scrollToCell(notebook.widgets[index], 'center');
    notebook.node.focus();
    return;
  }
  const editor = editorOf(widget);
  if (editor && target.line !== null) {
    const position = { line: Math.max(0, target.line - 1), column: 0 };
    editor.setCursorPosition(position);
    editor.revealPosition?.(position);
    editor.focus();
  }
}
