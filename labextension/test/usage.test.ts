import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { parseConversationDetail, parseConversationList } from '../src/api/conversations';
import { parseCompletion } from '../src/api/complete';
import { parseModels } from '../src/api/models';
import { parseUsage } from '../src/api/usage';
import { describeAssistant, tightestQuota } from '../src/usage/describe';
import { dailySeries, windowStart } from '../src/usage/series';

const open = { state: 'open' as const, reason: null, retryAt: null, attempt: 0 };
const quota = (metric: string, limit: number, used: number) => ({
  scope: 'user', metric, limit, used, remaining: limit - used, resets_at: '2026-11-27T00:00:00Z'
});

describe('usage status item', () => {
  test('shows connection, model and the quota closest to running out', () => {
    const view = describeAssistant({
      connection: open,
      model: 'claude-sonnet',
      quotas: [quota('daily_tokens', 1000, 100), quota('monthly_cost', 10, 6)],
      noModel: false
    });
    assert.equal(view.text, '● AI · claude-sonnet · 40% quota left');
    assert.match(view.title, /monthly cost \(user\): 6 of 10 used/);
    assert.deepEqual(view.flags, []);
  });

  test('a used-up quota and a dropped connection are flagged', () => {
    const view = describeAssistant({
      connection: { state: 'reconnecting', reason: 'lost', retryAt: 1, attempt: 1 },
      model: null,
      quotas: [quota('daily_tokens', 1000, 1000)],
      noModel: false
    });
    assert.equal(view.text, '◌ AI · auto · quota used up');
    assert.deepEqual(view.flags, ['unreachable', 'quota']);
  });

  test('no model configured; no quotas known', () => {
    const view = describeAssistant({ connection: open, model: null, quotas: null, noModel: true });
    assert.equal(view.text, '● AI · no model');
    assert.deepEqual(view.flags, ['no-model']);
    assert.equal(tightestQuota([]), null);
  });
});

describe('usage per day', () => {
  test('fills missing days with zero, oldest first', () => {
    const rows = [
      { key: '2026-11-24', input_tokens: 100, output_tokens: 20, kernel_seconds: 90, cost: 0 },
      { key: '2026-11-26', input_tokens: 5, output_tokens: 5, kernel_seconds: 0, cost: 0 }
    ];
    const days = dailySeries(rows, 3, new Date('2026-11-26T12:00:00Z'));
    assert.deepEqual(days, [
      { day: '2026-11-24', tokens: 120, kernelMinutes: 1.5 },
      { day: '2026-11-25', tokens: 0, kernelMinutes: 0 },
      { day: '2026-11-26', tokens: 10, kernelMinutes: 0 }
    ]);
    assert.equal(windowStart(14, new Date('2026-11-26T12:00:00Z')), '2026-11-13');
  });
});

describe('REST bodies', () => {
  test('usage as the gateway answers it', () => {
    const report = parseUsage({
      user: 'ada', group: null, by: 'day', currency: 'USD',
      rows: [{ day: '2026-11-26', input_tokens: 1, output_tokens: 2, kernel_seconds: 3, memory_gb_seconds: 0, cost: 0.1, records: 1 }],
      totals: {}, quotas: [quota('daily_tokens', 10, 1)]
    });
    assert.equal(report.rows[0].key, '2026-11-26');
    assert.equal(report.quotas[0].remaining, 9);
    assert.throws(() => parseUsage({ by: 'day', rows: [{ day: 'x' }] }), /\$\.rows\[0\]\.input_tokens/);
  });

  test('conversations, models and completions', () => {
    const summary = { id: 'cv_1', title: 'Plot', created: 1, updated: 2, last_seq: 12, active_run: null };
    assert.deepEqual(parseConversationList({ conversations: [summary] }), [summary]);
    const detail = parseConversationDetail({
      ...summary,
      turns: [{ role: 'user', text: 'Plot it', run_id: 'run_1' }],
      runs: [{ id: 'run_1', state: 'completed', usage: { input_tokens: 1 } }]
    });
    assert.equal(detail.turns[0].text, 'Plot it');
    assert.throws(() => parseConversationList({ conversations: [{ ...summary, last_seq: 'x' }] }), /last_seq/);
    assert.deepEqual(parseModels({ models: [{ name: 'claude-haiku', provider: 'anthropic', capabilities: ['chat', 'complete'] }] })[0].name, 'claude-haiku');
    assert.throws(() => parseModels({ models: [{ name: 'x' }] }), /provider/);
    assert.equal(parseCompletion({ completion: 'sum(xs)', model: 'm', usage: { input_tokens: 1, output_tokens: 2 } }).completion, 'sum(xs)');
    assert.throws(() => parseCompletion({ completion: 1 }), /usage|completion/);
  });
});
