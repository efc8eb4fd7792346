/**
 * "Fix this error" in the error's own output area: a cell that fails when the user runs
 * it gets a button under its traceback that starts the fix loop on it. The button goes
 * as soon as the cell's outputs change (run again, cleared), so it never outlives its
 * error.
 */
import type { Cell, CodeCell } from '@jupyterlab/cells';

import { button } from '../ui/dom';

/** Puts the button under a failed code cell's outputs; `fix` starts the loop on it. */
export function addFixButton(cell: Cell, fix: () => void): void {
  if (cell.model.type !== 'code') {
    return;
  }
  const code = cell as CodeCell;
  const area = code.outputArea;
  const outputs = code.model.outputs;
  // A cell skipped after an earlier one failed "fails" too, with no error of its own.
  const failed = outputs.toJSON().some(o => o.output_type === 'error');
  if (!area || !failed || area.node.querySelector('.aiide-FixOutput')) {
    return;
  }
  const node = button('Fix this error', fix, {
    title: 'Fix this error, re-run and check the fix (every change waits for your approval)',
    class: 'aiide-FixOutput'
  });
  area.node.appendChild(node);
  const remove = (): void => {
    node.remove();
    outputs.changed.disconnect(remove);
  };
  outputs.changed.connect(remove);
}
