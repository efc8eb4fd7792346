import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { YNotebook } from '@jupyter/ydoc';

import type { IPatch, IPatchCell } from '../src/api/protocol';
import { ArrayTarget, applyPatch, holdsPatch } from '../src/notebook/patch';
import { applyToNotebook, type ISharedNotebookLike } from '../src/notebook/sharedTarget';

const cells = (): IPatchCell[] => [
  { id: 'c1', cell_type: 'code', source: 'import pandas as pd' },
  { id: 'c2', cell_type: 'markdown', source: '# Data' },
  { id: 'c3', cell_type: 'code', source: 'df.head()' }
];
const ids = (t: { cells(): readonly IPatchCell[] }) => t.cells().map(c => c.id);
const patch = (...ops: IPatch['ops']): IPatch => ({ path: 'a.ipynb', ops });

describe('applyPatch (the protocol rules)', () => {
  test('insert after a cell, and at the top', () => {
    const t = new ArrayTarget(cells());
    const out = applyPatch(t, patch(
      { op: 'insert', after_id: 'c3', cell: { id: 'n1', cell_type: 'code', source: 'df.plot()' } },
      { op: 'insert', after_id: null, cell: { id: 'n0', cell_type: 'markdown', source: 'hi' } }
    ));
    assert.deepEqual(out, { status: 'applied' });
    assert.deepEqual(ids(t), ['n0', 'c1', 'c2', 'c3', 'n1']);
  });

  test('replace checks the expected source, delete too', () => {
    const t = new ArrayTarget(cells());
    assert.equal(applyPatch(t, patch({ op: 'replace', cell_id: 'c3', expected_source: 'df.head()', source: 'df.head(10)' })).status, 'applied');
    assert.equal(t.cells()[2].source, 'df.head(10)');
    const conflict = applyPatch(t, patch({ op: 'delete', cell_id: 'c1', expected_source: 'import numpy' }));
    assert.equal(conflict.status, 'conflict');
    assert.deepEqual(ids(t), ['c1', 'c2', 'c3']);
  });

  test('a conflict anywhere leaves the notebook untouched (all or nothing)', () => {
    const t = new ArrayTarget(cells());
    let transacted = false;
    const out = applyPatch(t, patch(
      { op: 'insert', after_id: 'c1', cell: { id: 'n1', cell_type: 'code', source: 'x' } },
      { op: 'replace', cell_id: 'c3', expected_source: 'something else', source: 'y' }
    ), apply => {
      transacted = true;
      apply();
    });
    assert.equal(out.status, 'conflict');
    assert.equal(transacted, false);
    assert.deepEqual(ids(t), ['c1', 'c2', 'c3']);
  });

  test('applying the same patch twice applies it once', () => {
    const t = new ArrayTarget(cells());
    const p = patch(
      { op: 'insert', after_id: 'c1', cell: { id: 'n1', cell_type: 'code', source: 'x' } },
      { op: 'replace', cell_id: 'c3', expected_source: 'df.head()', source: 'df.tail()' },
      { op: 'delete', cell_id: 'c2', expected_source: '# Data' }
    );
    assert.equal(applyPatch(t, p).status, 'applied');
    const once = JSON.stringify(t.cells());
    assert.equal(applyPatch(t, p).status, 'applied');
    assert.equal(JSON.stringify(t.cells()), once);
  });

  test('a conflict names the cell as the user sees it and carries both versions', () => {
    const t = new ArrayTarget(cells());
    t.setSource(2, 'df.head(3)  # the user changed it meanwhile');
    const out = applyPatch(t, patch({ op: 'replace', cell_id: 'c3', expected_source: 'df.head()', source: 'df.describe()' }));
    assert.deepEqual(out, {
      status: 'conflict',
      reason: 'cell 3 (df.head(3)  # the user changed it meanw…) changed since the assistant read it',
      cell: { cellId: 'c3', theirs: 'df.head(3)  # the user changed it meanwhile', ours: 'df.describe()' }
    });
    const gone = applyPatch(t, patch({ op: 'replace', cell_id: 'zz-uuid', expected_source: '', source: 'x' }));
    assert.equal(gone.status, 'conflict');
    assert.ok(gone.status === 'conflict' && !gone.reason.includes('zz-uuid'), 'no ids in what the user reads');
  });

  test('"apply anyway" writes over a changed cell, all or nothing, but not over a missing one', () => {
    const t = new ArrayTarget(cells());
    t.setSource(2, 'df.head(3)');
    const p = patch(
      { op: 'replace', cell_id: 'c3', expected_source: 'df.head()', source: 'df.describe()' },
      { op: 'delete', cell_id: 'c2', expected_source: '# Old title' }
    );
    assert.equal(applyPatch(t, p).status, 'conflict');
    assert.deepEqual(applyPatch(t, p, undefined, { force: true }), { status: 'applied' });
    assert.deepEqual(t.cells().map(c => c.source), ['import pandas as pd', 'df.describe()']);
    const missing = patch({ op: 'replace', cell_id: 'nope', expected_source: '', source: 'x' });
    assert.equal(applyPatch(t, missing, undefined, { force: true }).status, 'conflict');
  });

  test('a different cell with the same id is a conflict', () => {
    const t = new ArrayTarget(cells());
    const out = applyPatch(t, patch({ op: 'insert', after_id: null, cell: { id: 'c1', cell_type: 'code', source: 'other' } }));
    assert.equal(out.status, 'conflict');
  });

  test('move to the top and after another cell', () => {
    const t = new ArrayTarget(cells());
    applyPatch(t, patch({ op: 'move', cell_id: 'c3', after_id: null }));
    assert.deepEqual(ids(t), ['c3', 'c1', 'c2']);
    applyPatch(t, patch({ op: 'move', cell_id: 'c3', after_id: 'c2' }));
    assert.deepEqual(ids(t), ['c1', 'c2', 'c3']);
    assert.equal(applyPatch(t, patch({ op: 'move', cell_id: 'c1', after_id: 'nope' })).status, 'conflict');
  });

  test('replace may change the cell type', () => {
    const t = new ArrayTarget(cells());
    applyPatch(t, patch({ op: 'replace', cell_id: 'c2', expected_source: '# Data', source: 'print(1)', cell_type: 'code' }));
    assert.deepEqual(t.cells()[1], { id: 'c2', cell_type: 'code', source: 'print(1)' });
  });
});

describe('holdsPatch (does the notebook still have the change?)', () => {
  test('each kind of op, held and taken back', () => {
    const t = new ArrayTarget(cells());
    const ops = patch(
      { op: 'insert', after_id: 'c3', cell: { id: 'n1', cell_type: 'code', source: 'df.plot()' } },
      { op: 'replace', cell_id: 'c1', expected_source: 'import pandas as pd', source: 'import numpy as np' },
      { op: 'delete', cell_id: 'c2', expected_source: '# Data' },
      { op: 'move', cell_id: 'c3', after_id: null }
    );
    assert.equal(holdsPatch(t.cells(), ops), false);
    applyPatch(t, ops);
    assert.equal(holdsPatch(t.cells(), ops), true);
    for (const op of ops.ops) {
      assert.equal(holdsPatch(cells(), patch(op)), false, op.op);
    }
  });
});

describe('applyToNotebook (a real shared notebook model)', () => {
  // @jupyter/ydoc fills a new cell before adding it to the document, which yjs reports
  // with a harmless warning per cell; keep the test output readable.
  const warn = console.warn;
  before(() => {
    console.warn = (...args: unknown[]) => {
      if (!String(args[0]).startsWith('Invalid access')) {
        warn(...args);
      }
    };
  });
  after(() => {
    console.warn = warn;
    for (const nb of made.splice(0)) {
      nb.dispose(); // stops its awareness timer, so node can exit
    }
  });
  const made: YNotebook[] = [];
  const notebook = (): YNotebook => {
    const nb = YNotebook.create({
      disableDocumentWideUndoRedo: true,
      data: {
        cells: cells().map(c => ({ ...c, metadata: {}, ...(c.cell_type === 'code' ? { outputs: [], execution_count: null } : {}) })) as never,
        metadata: {},
        nbformat: 4,
        nbformat_minor: 5
      }
    });
    made.push(nb);
    return nb;
  };
  const sources = (nb: YNotebook) => nb.cells.map(c => `${c.getId()}:${c.getSource()}`);

  test('a multi-op patch is one undo step of the notebook', () => {
    const nb = notebook();
    nb.undoManager.clear();
    const before = sources(nb);
    const { outcome, undo } = applyToNotebook(nb as unknown as ISharedNotebookLike, patch(
      { op: 'insert', after_id: 'c3', cell: { id: 'n1', cell_type: 'code', source: 'df.plot()' } },
      { op: 'replace', cell_id: 'c3', expected_source: 'df.head()', source: 'df.head(10)' },
      { op: 'delete', cell_id: 'c2', expected_source: '# Data' }
    ));
    assert.equal(outcome.status, 'applied');
    assert.deepEqual(sources(nb), ['c1:import pandas as pd', 'c3:df.head(10)', 'n1:df.plot()']);
    assert.ok(undo?.canUndo());
    assert.equal(undo?.undo(), true);
    assert.deepEqual(sources(nb), before);
  });

  test('JupyterLab\'s own notebook undo takes the patch back in one step', () => {
    const nb = notebook();
    nb.undoManager.clear();
    const before = sources(nb);
    const applied = patch(
      { op: 'insert', after_id: 'c1', cell: { id: 'n1', cell_type: 'code', source: 'x = 1' } },
      { op: 'replace', cell_id: 'c1', expected_source: 'import pandas as pd', source: 'import numpy as np' }
    );
    applyToNotebook(nb as unknown as ISharedNotebookLike, applied);
    const now = () => nb.cells.map(c => ({ id: c.getId(), source: c.getSource() }));
    assert.equal(holdsPatch(now(), applied), true);
    nb.undo();
    assert.deepEqual(sources(nb), before);
    // The card notices: the notebook no longer holds the change.
    assert.equal(holdsPatch(now(), applied), false);
  });

  test('the Undo button declines once the user changed the notebook after the patch', () => {
    const nb = notebook();
    const { undo } = applyToNotebook(nb as unknown as ISharedNotebookLike, patch(
      { op: 'insert', after_id: 'c1', cell: { id: 'n1', cell_type: 'code', source: 'x = 1' } }
    ));
    nb.undoManager.stopCapturing();
    nb.insertCell(0, { cell_type: 'code', source: 'mine' });
    assert.equal(undo?.canUndo(), false);
    assert.equal(undo?.undo(), false);
    assert.equal(nb.cells[0].getSource(), 'mine');
  });

  test('a conflict or a no-op patch offers no undo', () => {
    const nb = notebook();
    const conflict = applyToNotebook(nb as unknown as ISharedNotebookLike, patch(
      { op: 'delete', cell_id: 'c1', expected_source: 'wrong' }
    ));
    assert.equal(conflict.outcome.status, 'conflict');
    assert.equal(conflict.undo, null);
    const noop = applyToNotebook(nb as unknown as ISharedNotebookLike, patch(
      { op: 'replace', cell_id: 'c1', expected_source: 'x', source: 'import pandas as pd' }
    ));
    assert.equal(noop.outcome.status, 'applied');
    assert.equal(noop.undo, null);
  });
});
