/**
 * Approval cards (issue 19): cells named by position and first line, the code a run
 * runs, the cell shown in the notebook, the Edit form's cell choice, an edited approval
 * showing what was done, a change the notebook no longer holds.
 */
import { window } from './dom';

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import type { IPatch } from '../src/api/protocol';
import { CallCard, type CallBlock, type ICallHandlers } from '../src/chat/callCard';
import type { ICellView } from '../src/notebook/bridge';

after(() => window.happyDOM.close());

const PATH = 'scores.ipynb';
const CELLS: ICellView[] = [
  { id: '6becf666-582b-4a0e', position: 1, cellType: 'code', source: 'import pandas as pd' },
  { id: '9f1c0a22-7d3e-4b55', position: 2, cellType: 'code', source: 'df = pd.read_csv("s.csv")\ndf.head()' }
];

function handlers(revealed: string[]): ICallHandlers {
  return {
    approve: () => true,
    reject: () => true,
    confirm: () => undefined,
    refuse: () => undefined,
    undo: () => undefined,
    switchToSandbox: async () => undefined,
    notebooks: {
      cells: path => (path === PATH ? CELLS : []),
      reveal: (_, id) => {
        revealed.push(id);
        return true;
      },
      codeField: null
    }
  };
}

function call(name: string, args: Record<string, unknown>, rest: Partial<CallBlock> = {}): CallBlock {
  return {
    kind: 'call',
    key: 'k1',
    runId: 'run_1',
    callId: 'toolu_1',
    name,
    arguments: { path: PATH, ...args },
    risk: 'edit',
    decision: 'approve',
    approval: { expiresAt: Date.now() / 1000 + 600, patch: null, resolution: null },
    request: null,
    result: null,
    ...rest
  };
}

const replace = (source: string): IPatch => ({
  path: PATH,
  ops: [{ op: 'replace', cell_id: CELLS[1].id, expected_source: CELLS[1].source, source }]
});

const text = (card: CallCard, selector: string): string =>
  card.node.querySelector(selector)?.textContent ?? '';

describe('approval cards', () => {
  test('name cells by position and first line, never by id, and show the cell', () => {
    const revealed: string[] = [];
    const card = new CallCard(handlers(revealed));
    const block = call('replace_cell', { cell_id: CELLS[1].id, source: 'df.tail()' });
    block.approval!.patch = replace('df.tail()');
    card.update(block, true);
    assert.equal(text(card, '.aiide-Call-what'), `Change cell 2 “df = pd.read_csv("s.csv")” in ${PATH}`);
    assert.doesNotMatch(card.node.textContent ?? '', /6becf666|9f1c0a22/);
    assert.deepEqual(revealed, [CELLS[1].id], 'shown once when it asks');
    card.update(block, true);
    assert.equal(revealed.length, 1);
    (card.node.querySelector('.aiide-Call-what') as HTMLElement).click();
    assert.equal(revealed.length, 2, 'a click shows it again');
    card.dispose();
  });

  test('a run_cell card shows the code it will run', () => {
    const card = new CallCard(handlers([]));
    card.update({ ...call('run_cell', { cell_id: CELLS[1].id }), risk: 'run' }, true);
    assert.equal(text(card, '.aiide-Call-code'), CELLS[1].source);
    assert.equal(text(card, '.aiide-Call-risk'), 'run');
    card.dispose();
  });

  test('the Edit form offers the cells for "where", never an id to type', () => {
    const card = new CallCard(handlers([]));
    card.update(call('insert_cell', { after_id: CELLS[0].id, source: 'df.tail()' }), true);
    const edit = [...card.node.querySelectorAll('button')].find(b => b.textContent === 'Edit');
    edit!.click();
    const options = [...card.node.querySelectorAll('.aiide-Call-field[data-key=after_id] option')];
    assert.deepEqual(options.map(o => o.textContent), [
      'at the top',
      'after cell 1 “import pandas as pd”',
      'after cell 2 “df = pd.read_csv("s.csv")”'
    ]);
    assert.equal((card.node.querySelector('.aiide-Call-field[data-key=after_id] select') as HTMLSelectElement).value, CELLS[0].id);
    card.dispose();
  });

  test('approved with changes: the card shows what was applied and who edited it', () => {
    const card = new CallCard(handlers([]));
    const block = call('replace_cell', { cell_id: CELLS[1].id, source: 'df.tail()' });
    block.approval!.patch = replace('df.describe()');
    block.approval!.resolution = { decision: 'approve', by: 'ada', reason: null, edited: true };
    card.update(block, false);
    // Before the notebook request arrives: not the model's diff.
    assert.doesNotMatch(card.node.textContent ?? '', /describe/);
    block.request = {
      requestId: 'rq_1', kind: 'patch', path: PATH, patch: replace('df.tail()'), cellId: null,
      state: 'applied', reason: null, undoable: true, held: true
    };
    card.update(block, false);
    assert.match(text(card, '.aiide-Diff-add'), /df\.tail\(\)/);
    assert.match(text(card, '.aiide-Call-edited'), /Edited by you/);
    card.dispose();
  });

  test('a change the notebook no longer holds is said so, with no Undo', () => {
    const card = new CallCard(handlers([]));
    const block = call('replace_cell', { cell_id: CELLS[1].id, source: 'df.tail()' });
    block.approval!.resolution = { decision: 'approve', by: 'ada', reason: null, edited: false };
    const request = {
      requestId: 'rq_1', kind: 'patch' as const, path: PATH, patch: replace('df.tail()'),
      cellId: null, state: 'applied' as const, reason: null, undoable: false, held: true
    };
    card.update({ ...block, request }, false);
    const undo = [...card.node.querySelectorAll('button')].find(b => b.textContent === 'Undo');
    assert.ok(undo?.disabled, 'later changes: Undo disabled');
    assert.match(undo?.title ?? '', /Edit › Undo/);
    card.update({ ...block, request: { ...request, held: false } }, false);
    assert.match(text(card, '.aiide-Call-request'), /No longer in scores\.ipynb/);
    assert.equal([...card.node.querySelectorAll('button')].filter(b => b.textContent === 'Undo').length, 0);
    card.dispose();
  });
});

describe('a rejected call', () => {
  const rejected = (block: CallBlock, by: string): CallBlock => ({
    ...block,
    approval: { ...block.approval!, resolution: { decision: 'reject', by, reason: 'not now', edited: false } },
    result: {
      ok: false,
      content: 'rejected by the user: not now',
      error: { code: 'rejected', message: 'rejected' },
      outputs: null,
      citations: []
    }
  });

  test("is the user's own decision when made on this card, and no error", () => {
    const card = new CallCard(handlers([]));
    const block = call('run_cell', { cell_id: CELLS[0].id });
    card.update(block, true);
    const buttons = () => [...card.node.querySelectorAll('button')] as HTMLButtonElement[];
    buttons().find(b => b.textContent === 'Reject')!.click();
    buttons().find(b => b.textContent === 'Reject')!.click(); // the reason box's Reject
    card.update(rejected(block, 'root'), false);
    assert.equal(text(card, '.aiide-Call-status'), 'You rejected this: not now');
    assert.equal(text(card, '.aiide-Call-result summary'), 'Not run');
    assert.doesNotMatch(card.node.textContent ?? '', /Rejected by root|Error/);
  });

  test('names who rejected it when someone else did', () => {
    const card = new CallCard(handlers([]));
    card.update(rejected(call('run_cell', { cell_id: CELLS[0].id }), 'ada'), false);
    assert.equal(text(card, '.aiide-Call-status'), 'Rejected by ada: not now');
  });
});

describe('a change that met a conflict', () => {
  const conflicted = (forced = false): CallBlock => {
    const block = call('replace_cell', { cell_id: CELLS[1].id, source: 'df.describe()' });
    block.approval!.resolution = { decision: 'approve', by: 'ada', reason: null, edited: false };
    block.request = {
      requestId: 'rq_9', kind: 'patch', path: PATH, patch: replace('df.describe()'), cellId: null,
      state: forced ? 'applied' : 'conflict',
      reason: forced ? null : 'cell 2 (df = pd.read_csv("s.csv")) changed since the assistant read it',
      undoable: forced, held: true, forced,
      conflict: forced ? null : { cellId: CELLS[1].id, theirs: 'df.head(3)', ours: 'df.describe()' }
    };
    block.result = {
      ok: false,
      content: 'conflict: the notebook changed',
      error: { code: 'conflict', message: 'cell 9f1c0a22-7d3e-4b55 changed' },
      outputs: null,
      citations: []
    };
    return block;
  };

  test('is said once, in words, and offers both versions and "Apply anyway"', () => {
    const anyway: string[] = [];
    const card = new CallCard({ ...handlers([]), applyAnyway: id => anyway.push(id) });
    card.update(conflicted(), false);
    assert.equal(text(card, '.aiide-Call-status'), 'Not applied');
    assert.equal(card.node.querySelector('.aiide-Call-result'), null, 'no second "error (conflict)"');
    assert.doesNotMatch(card.node.textContent ?? '', /9f1c0a22|Error|error \(conflict\)/);
    const button = (label: string) =>
      [...card.node.querySelectorAll('button')].find(b => b.textContent === label) as HTMLButtonElement;
    assert.equal(card.node.querySelector('.aiide-Call-theirs'), null, 'versions shown on demand');
    button("Show the notebook's version").click();
    assert.equal(text(card, '.aiide-Call-theirs'), 'df.head(3)');
    assert.equal(text(card, '.aiide-Call-ours'), 'df.describe()');
    button('Apply anyway').click();
    assert.deepEqual(anyway, ['rq_9']);
    card.dispose();
  });

  test('applied anyway: the card says the user did it, and offers Undo', () => {
    const card = new CallCard({ ...handlers([]), applyAnyway: () => undefined });
    card.update(conflicted(true), false);
    assert.equal(text(card, '.aiide-Call-status'), 'Applied anyway by you');
    assert.match(text(card, '.aiide-Call-request'), /Applied anyway to scores\.ipynb, by you/);
    assert.ok([...card.node.querySelectorAll('button')].some(b => b.textContent === 'Undo'));
    card.dispose();
  });
});

describe('a larger edit', () => {
  const big = Array.from({ length: 10 }, (_, i) => `row_${i} = ${i}`).join('\n');

  test('is shown in the notebook while its card waits, and taken away once decided', () => {
    const shown: IPatch[] = [];
    let removed = 0;
    const base = handlers([]);
    const card = new CallCard({
      ...base,
      notebooks: {
        ...base.notebooks!,
        preview: patch => {
          shown.push(patch);
          return () => removed++;
        }
      }
    });
    const block = call('replace_cell', { cell_id: CELLS[1].id, source: big });
    block.approval!.patch = replace(big);
    card.update(block, true);
    card.update(block, true);
    assert.equal(shown.length, 1, 'shown once while it waits');
    block.approval!.resolution = { decision: 'approve', by: 'ada', reason: null, edited: false };
    card.update(block, false);
    assert.equal(removed, 1);
    card.dispose();
  });

  test('a small edit stays on the card only', () => {
    const shown: IPatch[] = [];
    const base = handlers([]);
    const card = new CallCard({ ...base, notebooks: { ...base.notebooks!, preview: p => (shown.push(p), null) } });
    const block = call('replace_cell', { cell_id: CELLS[1].id, source: 'df.tail()' });
    block.approval!.patch = replace('df.tail()');
    card.update(block, true);
    assert.equal(shown.length, 0);
    card.dispose();
  });
});
