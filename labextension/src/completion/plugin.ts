/**
 * Plugin `aiide:inline-completion`: registers the aiide provider with JupyterLab's
 * inline completer (ghost text in notebooks, consoles and files). Its on/off switch,
 * debounce, timeout and suggestion length are in Settings › Inline Completer › aiide.
 */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { ICompletionProviderManager } from '@jupyterlab/completer';
import { NotebookPanel } from '@jupyterlab/notebook';
import type { Widget } from '@lumino/widgets';

import { streamCompletion } from '../api/complete';
import type { FailureKind } from '../api/failure';
import { chatIcon } from '../ui/icons';
import { AiideInlineProvider } from './provider';

/** Code cells above the active one, nearest last (what the model reads before the cursor). */
function textBefore(widget: Widget): string {
  if (!(widget instanceof NotebookPanel)) {
    return '';
  }
  const notebook = widget.content;
  return notebook.widgets
    .slice(0, notebook.activeCellIndex)
    .filter(cell => cell.model.type === 'code')
    .map(cell => cell.model.sharedModel.getSource())
    .join('\n\n');
}

interface ISource {
  getSource?: () => string;
}

/** The source of the editor the user is in now: the active cell, or a file's text. */
function editorText(widget: Widget): string | null {
  if (widget instanceof NotebookPanel) {
    return widget.content.activeCell?.model.sharedModel.getSource() ?? null;
  }
  // A file editor's document widget; a console (no single document model) is unknown.
  const content = (widget as { content?: { model?: { sharedModel?: ISource } } }).content;
  const shared = content?.model?.sharedModel;
  return typeof shared?.getSource === 'function' ? shared.getSource() : null;
}

function pathOf(widget: Widget): string | null {
  const context = (widget as { context?: { path?: unknown } }).context;
  return typeof context?.path === 'string' ? context.path : null;
}

export const inlineCompletionPlugin: JupyterFrontEndPlugin<void> = {
  id: 'aiide:inline-completion',
  description: 'Inline (ghost text) code completion from the aiide server.',
  autoStart: true,
  requires: [ICompletionProviderManager],
  activate: (app: JupyterFrontEnd, manager: ICompletionProviderManager): void => {
    const server = app.serviceManager.serverSettings;
    const told = new Set<FailureKind>();
    manager.registerInlineProvider(
      new AiideInlineProvider({
        complete: (body, signal, onText) => streamCompletion(body, server, signal, onText),
        textBefore,
        editorText,
        path: pathOf,
        cellId: widget => (widget instanceof NotebookPanel ? (widget.content.activeCell?.model.id ?? null) : null),
        icon: chatIcon,
        onFailure: failure => {
          console.info('aiide: inline completion failed', failure);
          if (failure.kind !== 'provider' && failure.kind !== 'timeout' && !told.has(failure.kind)) {
            told.add(failure.kind);
            Notification.warning(`Inline completion paused: ${failure.message}`, {
              autoClose: 8000
            });
          }
        }
      })
    );
  }
};
