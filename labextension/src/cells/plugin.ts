/**
 * Plugin `aiide:cell-actions`: "Explain", "Fix this error" and "Generate code" on a
 * notebook cell — cell toolbar buttons, context-menu entries and keyboard shortcuts
 * (declared in schema/cell-actions.json, so users can change them), each asking the
 * chat with that cell as context; "Fix this error" starts the fix loop instead, and is
 * also a button under the traceback of a cell that failed when run.
 */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import type { LabIcon } from '@jupyterlab/ui-components';

import { IAiideChat } from '../chat/tokens';
import { explainIcon, fixIcon, generateIcon } from '../ui/icons';
import { addFixButton } from './errorAction';
import { canRun, cellRequest, type CellAction, type ICellSnapshot } from './prompts';

export const CellCommandIDs: Record<CellAction, string> = {
  explain: 'aiide:explain-cell',
  fix: 'aiide:fix-cell',
  generate: 'aiide:generate-cell'
};

const LABELS: Record<CellAction, { label: string; caption: string; icon: LabIcon }> = {
  explain: { label: 'Explain Cell', caption: 'Ask the assistant what this cell does', icon: explainIcon },
  fix: {
    label: 'Fix This Error',
    caption: 'Fix the error of this cell, re-run and check the fix (every change waits for your approval)',
    icon: fixIcon
  },
  generate: {
    label: 'Generate Code From Cell',
    caption: 'Write the code this comment or markdown asks for, in a new cell below',
    icon: generateIcon
  }
};

export const cellActionsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'aiide:cell-actions',
  description: 'Explain / Fix this error / Generate code, on notebook cells.',
  autoStart: true,
  requires: [IAiideChat, INotebookTracker],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    chat: IAiideChat,
    tracker: INotebookTracker,
    palette: ICommandPalette | null
  ): void => {
    const snapshot = (): ICellSnapshot | null => {
      const panel = tracker.currentWidget;
      const cell = panel?.content.activeCell;
      if (!panel || !cell) {
        return null;
      }
      const json = cell.model.toJSON();
      return {
        path: panel.context.path,
        cellId: cell.model.id,
        index: panel.content.activeCellIndex,
        cellType: cell.model.type,
        source: cell.model.sharedModel.getSource(),
        outputs: Array.isArray(json.outputs) ? (json.outputs as unknown as Record<string, unknown>[]) : []
      };
    };

    for (const action of Object.keys(CellCommandIDs) as CellAction[]) {
      const { label, caption, icon } = LABELS[action];
      app.commands.addCommand(CellCommandIDs[action], {
        label,
        caption,
        icon,
        isEnabled: () => {
          const cell = snapshot();
          return cell !== null && canRun(action, cell);
        },
        execute: async () => {
          const cell = snapshot();
          if (!cell || !canRun(action, cell)) {
            return;
          }
          if (action === 'fix') {
            // A fix loop, not a question: it re-runs, patches with approval and verifies.
            await chat.fix(cell.path, cell.cellId);
            return;
          }
          const request = cellRequest(action, cell);
          await chat.ask(request.text, request.task, request.context);
        }
      });
      palette?.addItem({ command: CellCommandIDs[action], category: 'AI Assistant' });
    }
    // Enablement follows the active cell and its outputs (Fix needs an error).
    const refresh = (): void => {
      for (const id of Object.values(CellCommandIDs)) {
        app.commands.notifyCommandChanged(id);
      }
    };
    tracker.activeCellChanged.connect(refresh);
    tracker.currentChanged.connect(refresh);
    NotebookActions.executed.connect(refresh);
    // A cell that failed when the user ran it: "Fix this error" under its traceback.
    NotebookActions.executed.connect((_, { notebook, cell, success }) => {
      const panel = tracker.find(p => p.content === notebook);
      if (success || !panel) {
        return;
      }
      addFixButton(cell, () => {
        const index = notebook.widgets.indexOf(cell);
        if (index >= 0) {
          notebook.activeCellIndex = index;
        }
        void chat.fix(panel.context.path, cell.model.id);
      });
    });
  }
};
