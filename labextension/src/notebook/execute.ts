/**
 * Runs one cell of an open notebook through the notebook's own session and executor
 * (`NotebookActions.runCells`), exactly as the user's Shift+Enter would, and reads the
 * outputs back from the cell.
 */
import { NotebookActions, type NotebookPanel } from '@jupyterlab/notebook';

import { kernelMismatch } from './sandbox';

export interface IExecution {
  status: 'ok' | 'error';
  outputs: Record<string, unknown>[];
  /** Why the cell did not run at all. */
  reason: string | null;
}

function failed(reason: string): IExecution {
  return { status: 'error', outputs: [], reason };
}

/**
 * `kernelId`: the kernel the server checked is sandboxed (`notebook_execute.kernel_id`);
 * the cell runs only there.
 */
export async function runCell(
  panel: NotebookPanel,
  cellId: string,
  kernelId?: string | null
): Promise<IExecution> {
  const notebook = panel.content;
  const cell = notebook.widgets.find(c => c.model.id === cellId);
  if (!cell) {
    return failed(`cell ${cellId} is not in the notebook`);
  }
  if (cell.model.type !== 'code') {
    return failed(`cell ${cellId} is a ${cell.model.type} cell, not code`);
  }
  const session = panel.sessionContext;
  await session.ready;
  if (!session.session?.kernel) {
    return failed('the notebook has no running kernel: start one, then ask again');
  }
  const mismatch = kernelMismatch(kernelId, session.session.kernel.id);
  if (mismatch) {
    return failed(mismatch);
  }
  const ok = await NotebookActions.runCells(notebook, [cell], session);
  const outputs = cell.model.toJSON().outputs;
  return {
    status: ok ? 'ok' : 'error',
    outputs: Array.isArray(outputs) ? (outputs as unknown as Record<string, unknown>[]) : [],
    reason: null
  };
}
