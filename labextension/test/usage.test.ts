import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { parseConversationDetail, parseConversationList } from '../src/api/conversations';
import { parseCompletion } from '../src/api/complete';
import { parseModels } from '../src/api/models';
import { parseUsage } from '../src/api/usage';
import { describeAssistant, quotaNotice, renewsAt, tightestQuota } from '../src/usage/describe';
import { breakdown, cachedText, featureName, formatCost } from '../src/usage/breakdown';
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
      { key: '2026-11-24', input_tokens: 100, output_tokens: 20, cache_read_tokens: 0, cache_write_tokens: 0, kernel_seconds: 90, cost: 0 },
      { key: '2026-11-26', input_tokens: 5, output_tokens: 5, cache_read_tokens: 0, cache_write_tokens: 0, kernel_seconds: 0, cost: 0.25 }
    ];
    const days = dailySeries(rows, 3, new Date('2026-11-26T12:00:00Z'));
    assert.deepEqual(days, [
      { day: '2026-11-24', tokens: 120, kernelMinutes: 1.5, cost: 0 },
      { day: '2026-11-25', tokens: 0, kernelMinutes: 0, cost: 0 },
      { day: '2026-11-26', tokens: 10, kernelMinutes: 0, cost: 0.25 }
    ]);
    assert.equal(windowStart(14, new Date('2026-11-26T12:00:00Z')), '2026-11-13');
  });
});

describe('usage by feature and model', () => {
  const report = {
    by: 'feature',
    currency: 'USD',
    quotas: [],
    rows: [
      { key: 'complete', input_tokens: 900, output_tokens: 100, cache_read_tokens: 0, cache_write_tokens: 0, kernel_seconds: 0, cost: 0.0012 },
      { key: 'agent', input_tokens: 2000, output_tokens: 500, cache_read_tokens: 1500, cache_write_tokens: 300, kernel_seconds: 0, cost: 0.0135 },
      { key: 'kernel', input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0, kernel_seconds: 600, cost: 0 },
      { key: 'new_thing', input_tokens: 1, output_tokens: 1, cache_read_tokens: 0, cache_write_tokens: 0, kernel_seconds: 0, cost: 0 }
    ]
  };

  test('rows named as users know them, the costliest first, with a total', () => {
    const { rows, total } = breakdown(report, featureName);
    assert.deepEqual(
      rows.map(r => [r.name, r.tokens, r.cost]),
      [
        ['Chat (agent)', 2500, '$0.0135'],
        ['Inline completion', 1000, '$0.0012'],
        ['New thing', 2, '$0.00'],
        ['Sandboxed kernels', 0, '$0.00']
      ]
    );
    assert.equal(rows[3].kernelMinutes, 10);
    assert.deepEqual([total.name, total.tokens, total.kernelMinutes, total.cost], ['Total', 3502, 10, '$0.0147']);
  });

  test('prompt-cache reads and writes are shown apart, a dash where nothing was cached', () => {
    const { rows, total } = breakdown(report, featureName);
    assert.equal(cachedText(rows[0]), '1,500 / 300');
    assert.equal(cachedText(rows[1]), '—');
    assert.deepEqual([total.cacheRead, total.cacheWrite], [1500, 300]);
  });

  test('costs as money, small ones not rounded to zero, any currency', () => {
    assert.equal(formatCost(0, 'USD', 'en-US'), '$0.00');
    assert.equal(formatCost(0.00042, 'USD', 'en-US'), '$0.0004');
    assert.equal(formatCost(12.5, 'EUR', 'en-US'), '€12.50');
    assert.equal(formatCost(1, 'credits', 'en-US'), '1.00 credits');
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
    assert.equal(report.rows[0].cache_read_tokens, 0); // an older server: none reported
    assert.equal(report.quotas[0].remaining, 9);
    const cached = parseUsage({
      by: 'model', rows: [{ model: 'm', input_tokens: 9, output_tokens: 1, cache_read_tokens: 6, cache_write_tokens: 2, kernel_seconds: 0, cost: 0 }]
    });
    assert.deepEqual([cached.rows[0].cache_read_tokens, cached.rows[0].cache_write_tokens], [6, 2]);
    assert.throws(
      () => parseUsage({ by: 'm', rows: [{ m: 'x', input_tokens: 1, output_tokens: 1, cache_read_tokens: 'many', kernel_seconds: 0, cost: 0 }] }),
      /\$\.rows\[0\]\.cache_read_tokens/
    );
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

describe('budget warnings (issue 21)', () => {
  const now = new Date('2026-12-07T22:40:00Z');
  const budget = (used: number) => ({
    scope: 'course ds101', metric: 'daily_tokens', limit: 1500, used,
    remaining: Math.max(0, 1500 - used), resets_at: '2026-12-08T00:00:00Z'
  });

  test('below 80 % used: no warning, no flag', () => {
    const view = describeAssistant({ connection: open, model: null, quotas: [budget(1000)], noModel: false }, now);
    assert.deepEqual([view.flags, view.notices], [[], []]);
  });

  test('at 80 % and 95 % the student is warned, with what is left and when it renews', () => {
    const at80 = describeAssistant({ connection: open, model: null, quotas: [budget(1200)], noModel: false }, now);
    assert.deepEqual(at80.flags, ['quota-low']);
    assert.equal(at80.notices.length, 1);
    assert.equal(at80.notices[0].type, 'warning');
    assert.match(at80.notices[0].message, /used 80% of your daily tokens \(course ds101\): 300 of 1,500 tokens left/);
    assert.match(at80.notices[0].message, /\(in 1 h 20 min\)/);
    const at95 = quotaNotice(budget(1430), now);
    assert.ok(at95 && at80.notices[0].key !== at95.key); // a new notice, not the same one again
  });

  test('used up: red, an error that says when the budget renews, never "no quota"', () => {
    const view = describeAssistant({ connection: open, model: null, quotas: [budget(1500)], noModel: false }, now);
    assert.equal(view.text, '● AI · auto · quota used up');
    assert.deepEqual(view.flags, ['quota']);
    assert.equal(view.notices[0].type, 'error');
    assert.match(view.notices[0].message, /is used up: 1,500 of 1,500 tokens\. The assistant is back when it renews/);
  });

  test('the renewal moment is written in the reader\'s time zone, named', () => {
    const text = renewsAt('2026-12-08T00:00:00Z', now, 'en-US');
    assert.match(text, /Dec 8, 2026/);
    assert.match(text, /(UTC|GMT)/);
    assert.match(text, /\(in 1 h 20 min\)$/);
  });
});
