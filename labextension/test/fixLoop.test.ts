/**
 * The fix loop in the chat: fix events fold into one compact step per attempt and a
 * verdict block with the attempts' runs (what "Undo fix" takes back); the fix's own cell
 * runs need no card; the views name cells by position, never by id, and say
 * "Verified" or "Not verified: why".
 */
import { window } from './dom';

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import { ChatSocket } from '../src/api/chatSocket';
import type { ConversationEvent } from '../src/api/protocol';
import { parseFrame } from '../src/api/frames';
import { ChatSession, type IConversationApi } from '../src/chat/session';
import { renderFixEnd, renderFixStep } from '../src/chat/fixView';
import { fixQuestion, Transcript, type Block } from '../src/chat/transcript';
import type { ICellView } from '../src/notebook/bridge';
import { event, FakeClock, FakeSocket } from './harness';

after(() => window.happyDOM.close());

const FIX = 'fix_1';
const e = (type: string, seq: number, fields: Record<string, unknown> = {}, run = FIX) =>
  event(type, seq, fields, 'cv_1', run) as unknown as ConversationEvent;
const usage = { input_tokens: 10, output_tokens: 2, model_calls: 1, tool_calls: 1, steps: 1 };
const ID1 = '6becf666-582b-4a0e-9d1c-000000000001';
const ID2 = '6becf666-582b-4a0e-9d1c-000000000002';
const ID3 = '6becf666-582b-4a0e-9d1c-000000000003';
const CELLS: ICellView[] = [
  { id: ID1, position: 1, cellType: 'code', source: 'total = 40' },
  { id: ID2, position: 2, cellType: 'code', source: 'result = totl + 2' },
  { id: ID3, position: 3, cellType: 'code', source: 'print(result)' }
];

function attempt(seq: number, n: number, result: string, runId: string, detail = ''): ConversationEvent {
  return e('fix_attempt', seq, {
    number: n,
    attempt_run_id: runId,
    error: { cell_id: ID2, ename: 'NameError', evalue: "name 'totl' is not defined", kind: 'error' },
    patch: [{ cell_id: ID2, op: 'replace', before: 'result = totl + 2', after: 'result = total + 2' }],
    approvals: [],
    result,
    detail,
    reran: [ID2, ID3],
    tokens: 12,
    seconds: 1.5
  });
}

function run(t: Transcript, seq: number, runId: string): number {
  t.apply(e('run_started', seq, { reply_to: null, task: 'agent', model: 'm', provider: 'p' }, runId));
  t.apply(e('tool_call', seq + 1, {
    call_id: `call_${runId}`, name: 'replace_cell', arguments: { cell_id: ID2 }, risk: 'edit', decision: 'approve'
  }, runId));
  t.apply(e('run_finished', seq + 2, { status: 'completed', text: 'ok', usage }, runId));
  return seq + 3;
}

function fixTranscript(): Transcript {
  const t = new Transcript();
  t.ask('q1', fixQuestion('nb.ipynb', 2));
  t.apply(e('fix_started', 1, { reply_to: 'q1', path: 'nb.ipynb', cell_id: ID2, max_attempts: 3 }));
  let seq = run(t, 2, 'run_a');
  t.apply(e('notebook_execute', seq++, { request_id: 'rq_1', path: 'nb.ipynb', cell_id: ID2, kernel_id: null }));
  t.apply(attempt(seq++, 1, 'broke_downstream', 'run_a', `cell ${ID3}: NameError: name 'result' is not defined`));
  seq = run(t, seq, 'run_b');
  t.apply(attempt(seq++, 2, 'verified', 'run_b', `verified: re-ran ${ID2}, ${ID3}`));
  t.apply(e('fix_finished', seq, {
    status: 'verified', reason: 'fixed', message: `verified: re-ran ${ID2}, ${ID3}`,
    error_cell: ID2, attempts: 2, tokens: 24, seconds: 4
  }));
  return t;
}

describe('fix loop: folding', () => {
  test('fix events fold into the question, one step per attempt and the verdict', () => {
    const t = fixTranscript();
    const kinds = t.blocks.map(b => b.kind);
    // the attempts' runs show their cards and answers, but no question of their own, and
    // the fix's cell runs (notebook_execute under the fix's id) no card
    assert.deepEqual(kinds, [
      'question', 'call', 'answer', 'finished', 'fixStep', 'call', 'answer', 'finished', 'fixStep', 'fixEnd'
    ]);
    const question = t.blocks[0];
    assert.ok(question.kind === 'question' && question.runId === FIX);
    assert.equal(question.text, 'Fix the error in cell 2 of nb.ipynb and check the fix');
    const end = t.blocks[t.blocks.length - 1] as Extract<Block, { kind: 'fixEnd' }>;
    assert.deepEqual(end.runIds, ['run_a', 'run_b']);
    assert.deepEqual(end.reran, [ID2, ID3], 'what Undo runs again, each cell once');
    assert.equal(end.undo, 'available');
    assert.equal(t.activeFix, null);
    assert.ok(t.isFix(FIX) && !t.isFix('run_a'));
  });

  test('the fix is active from its start to its end; Undo is recorded on the verdict', () => {
    const t = new Transcript();
    t.apply(e('fix_started', 1, { reply_to: null, path: 'nb.ipynb', cell_id: null, max_attempts: 3 }));
    assert.equal(t.activeFix, FIX);
    assert.ok(t.blocks[0].kind === 'question' && t.blocks[0].text === fixQuestion('nb.ipynb'));
    t.apply(e('fix_finished', 2, {
      status: 'not_verified', reason: 'no_patch', message: 'the model changed nothing',
      error_cell: ID2, attempts: 1, tokens: 5, seconds: 1
    }));
    assert.equal(t.activeFix, null);
    const end = t.blocks[1];
    assert.ok(end.kind === 'fixEnd' && end.undo === 'none', 'nothing changed: nothing to undo');
    const done = fixTranscript();
    done.fixUndone(FIX, true, 'Undone: 2 changes taken back.');
    const last = done.blocks[done.blocks.length - 1];
    assert.ok(last.kind === 'fixEnd' && last.undo === 'done' && last.undoNote?.startsWith('Undone'));
  });

  test('fix frames are checked like every event; a bad one is refused', () => {
    const good = JSON.stringify(attempt(5, 1, 'verified', 'run_a'));
    assert.equal(parseFrame(good).kind, 'event');
    const bad = JSON.parse(good) as Record<string, unknown>;
    bad.patch = [{ cell_id: ID2, op: 'rewrite', before: null, after: null }];
    const parsed = parseFrame(JSON.stringify(bad));
    assert.ok(parsed.kind === 'invalid' && parsed.type === 'fix_attempt');
  });
});

describe('fix loop: views', () => {
  test('a step reads error → change → result, with cells by position', () => {
    const t = fixTranscript();
    const steps = t.blocks.filter(b => b.kind === 'fixStep') as Extract<Block, { kind: 'fixStep' }>[];
    const first = renderFixStep(steps[0], CELLS);
    const text = first.textContent ?? '';
    assert.match(text, /^Attempt 1cell 2: NameError: name 'totl' is not defined → changed cell 2/);
    assert.match(text, /broke a later cell/);
    assert.match(text, /cell 3: NameError: name 'result' is not defined/);
    assert.equal(first.dataset.result, 'broke_downstream');
    assert.ok(!text.includes('6becf666'), text);
    const second = renderFixStep(steps[1], CELLS);
    assert.equal(second.querySelector('.aiide-FixStep-result')?.textContent, 'verified');
    assert.equal(second.querySelector('.aiide-FixStep-after')?.textContent, 'result = total + 2');
  });

  test('the end says Verified, or Not verified with why, and offers one Undo', () => {
    const t = fixTranscript();
    const end = t.blocks[t.blocks.length - 1] as Extract<Block, { kind: 'fixEnd' }>;
    const undone: string[][] = [];
    const node = renderFixEnd(end, CELLS, e => undone.push([...e.runIds]));
    assert.equal(node.querySelector('.aiide-FixEnd-verdict')?.textContent, 'Verified');
    assert.ok(!(node.textContent ?? '').includes('6becf666'));
    const undo = [...node.querySelectorAll('button')].find(b => b.textContent === 'Undo fix');
    assert.ok(undo);
    undo.click();
    assert.deepEqual(undone, [['run_a', 'run_b']]);
    const failed = renderFixEnd(
      { ...end, status: 'not_verified', reason: 'max_attempts', message: `still failing after 3 attempts: cell ${ID3}: KeyError` },
      CELLS,
      null
    );
    assert.equal(
      failed.querySelector('.aiide-FixEnd-verdict')?.textContent,
      'Not verified: still failing after 3 attempts: cell 3: KeyError'
    );
    assert.equal(failed.querySelector('button'), null, 'no Undo without a handler');
    const after = renderFixEnd({ ...end, undo: 'done', undoNote: 'Undone: 2 changes taken back.' }, CELLS, () => undefined);
    assert.equal(after.querySelector('button'), null, 'undone: no second Undo');
    assert.match(after.textContent ?? '', /Undone: 2 changes/);
  });
});

const NO_CONVERSATIONS: IConversationApi = {
  list: async () => [],
  get: async id => ({ id, title: '', created: 0, updated: 0, last_seq: 0, active_run: null, turns: [], runs: [] }),
  remove: async () => undefined,
  search: async () => [],
  rename: async () => {
    throw new Error('not here');
  },
  exportFile: async () => {
    throw new Error('not here');
  }
};

const tick = (): Promise<void> => new Promise(resolve => setTimeout(resolve, 0));

describe('fix loop: the session', () => {
  test('fix sends a fix frame, its reply opens the conversation, Stop cancels the fix', async () => {
    let socket: FakeSocket | null = null;
    const client = new ChatSocket({
      url: () => 'ws://lab.test/aiide/api/chat/ws',
      createSocket: url => (socket = new FakeSocket(url)),
      clock: new FakeClock()
    });
    const session = new ChatSession(client, NO_CONVERSATIONS);
    client.connect();
    const ws = socket as unknown as FakeSocket;
    ws.hello();
    const asked = session.fix('nb.ipynb', ID2, 2, 'claude-sonnet');
    await tick();
    const [frame] = ws.sentOf('fix');
    assert.deepEqual(
      { ...frame, id: undefined },
      { type: 'fix', id: undefined, conversation_id: null, path: 'nb.ipynb', cell_id: ID2, model: 'claude-sonnet' }
    );
    ws.receive(event('fix_started', 1, {
      reply_to: frame.id, path: 'nb.ipynb', cell_id: ID2, max_attempts: 3
    }, 'cv_9', FIX));
    await asked;
    const t = session.current;
    assert.equal(t.id, 'cv_9');
    assert.equal(t.activeFix, FIX);
    assert.ok(t.blocks[0].kind === 'question' && t.blocks[0].runId === FIX);
    assert.ok(session.stop(t));
    const [cancel] = ws.sentOf('cancel');
    assert.equal(cancel.run_id, FIX, 'between attempts, Stop names the fix');
    assert.equal(cancel.conversation_id, 'cv_9');
    session.dispose();
    client.dispose();
  });

  test('a refused fix shows on its question, not as a stuck request', async () => {
    let socket: FakeSocket | null = null;
    const client = new ChatSocket({
      url: () => 'ws://lab.test/aiide/api/chat/ws',
      createSocket: url => (socket = new FakeSocket(url)),
      clock: new FakeClock()
    });
    const session = new ChatSession(client, NO_CONVERSATIONS);
    client.connect();
    const ws = socket as unknown as FakeSocket;
    ws.hello();
    const asked = session.fix('nb.txt', null, null, null);
    await tick();
    const [frame] = ws.sentOf('fix');
    ws.receive({
      type: 'error', conversation_id: null, run_id: null, seq: null, ts: 1,
      code: 'bad_message', message: "fix: 'path' must be a notebook (.ipynb)", reply_to: frame.id
    });
    await asked;
    const q = session.current.blocks[0];
    assert.ok(q.kind === 'question' && q.failed !== null, JSON.stringify(q));
    session.dispose();
    client.dispose();
  });
});
