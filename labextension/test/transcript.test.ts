import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { ConversationEvent } from '../src/api/protocol';
import { Transcript } from '../src/chat/transcript';
import { event } from './harness';

const e = (type: string, seq: number, fields: Record<string, unknown> = {}) =>
  event(type, seq, fields) as unknown as ConversationEvent;
const started = (seq: number, replyTo: string | null = null) =>
  e('run_started', seq, { reply_to: replyTo, task: 'agent', model: 'claude-sonnet', provider: 'anthropic' });
const usage = { input_tokens: 10, output_tokens: 2, model_calls: 1, tool_calls: 0, steps: 1 };

describe('Transcript', () => {
  test('a question gets its run, tokens stream into one answer, the run ends', () => {
    const t = new Transcript();
    t.ask('q1', 'Plot it');
    t.apply(started(1, 'q1'));
    t.apply(e('token', 2, { text: 'Let me ' }));
    t.apply(e('token', 3, { text: 'see.' }));
    assert.equal(t.activeRun?.id, 'run_1');
    t.apply(e('run_finished', 4, { status: 'completed', text: 'Let me see.', usage }));
    assert.deepEqual(
      t.blocks.map(b => b.kind),
      ['question', 'answer', 'finished']
    );
    const answer = t.blocks[1];
    assert.ok(answer.kind === 'answer' && answer.text === 'Let me see.' && !answer.streaming);
    assert.equal(t.blocks[0].kind === 'question' && t.blocks[0].runId, 'run_1');
    assert.equal(t.activeRun, null);
    assert.equal(t.id, 'cv_1');
    assert.equal(t.lastModel, 'claude-sonnet');
  });

  test('replayed runs get their question from the REST history', () => {
    const t = new Transcript('cv_1');
    t.setQuestions(new Map([['run_1', 'What is x?']]));
    t.apply(started(1), true);
    assert.ok(t.blocks[0].kind === 'question' && t.blocks[0].text === 'What is x?');
  });

  test('a tool call, its approval, notebook request and result fold into one card', () => {
    const t = new Transcript();
    t.apply(started(1));
    t.apply(e('token', 2, { text: 'Adding a cell.' }));
    const args = { path: 'a.ipynb', after_id: 'c3', source: '1+1' };
    t.apply(e('tool_call', 3, { call_id: 'toolu_1', name: 'insert_cell', arguments: args, risk: 'medium', decision: 'approve' }));
    const answer = t.blocks[1];
    assert.ok(answer.kind === 'answer' && !answer.streaming, 'text pauses for the tool call');
    const patch = { path: 'a.ipynb', ops: [{ op: 'insert', after_id: 'c3', cell: { id: 'n1', cell_type: 'code', source: '1+1' } }] };
    t.apply(e('approval_required', 4, { call_id: 'toolu_1', name: 'insert_cell', arguments: args, risk: 'medium', expires_at: 2e9, patch }));
    assert.equal(t.activeRun?.state, 'awaiting_approval');
    t.apply(e('approval_resolved', 5, { call_id: 'toolu_1', decision: 'approve', by: 'ada', reason: null }));
    assert.equal(t.activeRun?.state, 'running');
    t.apply(e('notebook_patch', 6, { request_id: 'rq_1', path: 'a.ipynb', patch }));
    t.updateRequest('rq_1', { state: 'applied', undoable: true });
    t.apply(e('tool_result', 7, { call_id: 'toolu_1', name: 'insert_cell', ok: true, content: 'inserted', error: null, outputs: null }));
    const cards = t.blocks.filter(b => b.kind === 'call');
    assert.equal(cards.length, 1);
    const card = cards[0];
    assert.ok(card.kind === 'call');
    assert.equal(card.approval?.resolution?.by, 'ada');
    assert.equal(card.request?.state, 'applied');
    assert.equal(card.request?.undoable, true);
    assert.equal(card.result?.content, 'inserted');
  });

  test('a notebook request of a run not followed here needs the user\'s confirmation', () => {
    const t = new Transcript();
    t.apply(e('notebook_patch', 9, { request_id: 'rq_2', path: 'a.ipynb', patch: { path: 'a.ipynb', ops: [{ op: 'move', cell_id: 'c1', after_id: null }] } }));
    const card = t.blocks[0];
    assert.ok(card.kind === 'call' && card.decision === 'approve' && card.approval === null);
    assert.equal(card.kind === 'call' && card.request?.state, 'pending');
  });

  test('notebook requests seen in a replay are history', () => {
    const t = new Transcript();
    t.apply(started(1), true);
    t.apply(e('notebook_execute', 2, { request_id: 'rq_9', path: 'a.ipynb', cell_id: 'c1' }), true);
    const card = t.blocks.find(b => b.kind === 'call');
    assert.ok(card?.kind === 'call' && card.request?.state === 'past');
  });

  test('an interrupted run shows its error and ends failed; the final text is kept', () => {
    const t = new Transcript();
    t.apply(started(1));
    t.apply(e('error', 2, { code: 'interrupted', message: 'the server restarted', reply_to: null }));
    t.apply(e('run_finished', 3, { status: 'failed', text: '', usage }));
    assert.deepEqual(t.blocks.map(b => b.kind), ['question', 'error', 'finished']);
    assert.equal(t.run('run_1')?.state, 'failed');
  });

  test('a run with no streamed text shows its final text', () => {
    const t = new Transcript();
    t.apply(started(1));
    t.apply(e('run_finished', 2, { status: 'completed', text: 'Done.', usage }));
    assert.ok(t.blocks.some(b => b.kind === 'answer' && b.text === 'Done.'));
  });

  test('a question refused before its run is marked, with the reason', () => {
    const t = new Transcript();
    t.ask('q1', 'hi');
    t.failQuestion('q1', 'quota used up');
    assert.ok(t.blocks[0].kind === 'question' && t.blocks[0].failed === 'quota used up');
  });

  test('each change names the block it touched', () => {
    const t = new Transcript();
    const changes: string[] = [];
    t.changed.connect((_, c) => changes.push(`${c.index}${c.added ? '+' : ''}`));
    t.apply(started(1));
    t.apply(e('token', 2, { text: 'a' }));
    t.apply(e('token', 3, { text: 'b' }));
    assert.deepEqual(changes, ['0+', '1+', '1']);
  });
});
