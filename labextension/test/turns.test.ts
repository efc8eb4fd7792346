/**
 * The end of a conversation: "Thinking…" from Enter to the first token (and while tools
 * run), and the last question offered again (Regenerate, or Retry after a failure).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { ConversationEvent } from '../src/api/protocol';
import { Transcript } from '../src/chat/transcript';
import { failedTurn, isThinking, lastTurn } from '../src/chat/turns';
import { event } from './harness';

const e = (type: string, seq: number, fields: Record<string, unknown> = {}) =>
  event(type, seq, fields) as unknown as ConversationEvent;
const started = (seq: number, replyTo: string | null = null) =>
  e('run_started', seq, { reply_to: replyTo, task: 'chat', model: 'claude-sonnet', provider: 'anthropic' });
const usage = { input_tokens: 10, output_tokens: 2, model_calls: 1, tool_calls: 0, steps: 1 };

describe('the last turn', () => {
  test('thinking from Enter to the first token, and again while a tool runs', () => {
    const t = new Transcript();
    assert.equal(isThinking(t), false);
    t.ask('q1', 'Plot it');
    assert.equal(isThinking(t), true, 'sent, no run yet');
    t.apply(started(1, 'q1'));
    assert.equal(isThinking(t), true, 'the run started, no token yet');
    t.apply(e('token', 2, { text: 'Let me ' }));
    assert.equal(isThinking(t), false, 'text streams');
    t.apply(e('tool_call', 3, { call_id: 't1', name: 'read_cell', arguments: {}, risk: 'read', decision: 'auto' }));
    assert.equal(isThinking(t), true, 'a tool runs');
    t.apply(e('approval_required', 4, { call_id: 't2', name: 'run_cell', arguments: {}, risk: 'run', expires_at: 2e9, patch: null }));
    assert.equal(isThinking(t), false, 'it waits for the user, who is told on the card');
    t.apply(e('approval_resolved', 5, { call_id: 't2', decision: 'reject', by: 'ada', reason: null }));
    t.apply(e('run_finished', 6, { status: 'completed', text: 'Let me ', usage }));
    assert.equal(isThinking(t), false);
  });

  test('a question refused before its run is not thinking, and offers nothing', () => {
    const t = new Transcript();
    t.ask('q1', 'Plot it');
    t.failQuestion('q1', 'not connected');
    assert.equal(isThinking(t), false);
    assert.equal(lastTurn(t), null);
  });

  test('the last question is offered once its run is over: Regenerate, or Retry when it failed', () => {
    const t = new Transcript();
    t.ask('q1', 'First');
    t.apply(started(1, 'q1'));
    assert.equal(lastTurn(t), null, 'not while it runs');
    t.apply(e('run_finished', 2, { status: 'completed', text: 'ok', usage }));
    const done = lastTurn(t);
    assert.deepEqual(done, { question: 'First', runId: 'run_1', task: 'chat', state: 'completed' });
    assert.ok(done && !failedTurn(done));

    t.ask('q2', 'Second');
    t.apply({ ...started(3, 'q2'), run_id: 'run_2' } as ConversationEvent);
    t.apply(e('error', 4, { run_id: 'run_2', code: 'provider_timeout', message: 'stalled' }));
    t.apply(e('run_finished', 5, { run_id: 'run_2', status: 'failed', text: '', usage }));
    const failed = lastTurn(t);
    assert.equal(failed?.question, 'Second');
    assert.ok(failed && failedTurn(failed));
  });
});
