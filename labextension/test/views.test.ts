/** Pure helpers behind the views: diff rows, outputs fitting, connection words, failures. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ServerConnection } from '@jupyterlab/services';

import { Backoff } from '../src/api/backoff';
import { describeFailure, explainCode } from '../src/api/failure';
import { ApiError } from '../src/api/request';
import { connectionText } from '../src/chat/connectionText';
import type { IPatch } from '../src/api/protocol';
import { cellName, describeCall } from '../src/chat/describeCall';
import { diffRows, patchDiff } from '../src/chat/diffRows';
import { fitOutputs } from '../src/notebook/outputs';

describe('diff rows (jsdiff)', () => {
  test('a replaced line shows as removed then added, context kept', () => {
    const rows = diffRows('a\nb\nc\n', 'a\nB\nc\n');
    assert.deepEqual(rows, [
      { kind: 'ctx', text: 'a' },
      { kind: 'del', text: 'b' },
      { kind: 'add', text: 'B' },
      { kind: 'ctx', text: 'c' }
    ]);
  });

  test('long unchanged stretches fold', () => {
    const before = Array.from({ length: 20 }, (_, i) => `line ${i}`).join('\n');
    const after = before.replace('line 10', 'LINE 10');
    const rows = diffRows(before, after);
    assert.deepEqual(rows.filter(r => r.kind === 'fold').map(r => r.text), ['7 unchanged lines', '6 unchanged lines']);
    assert.equal(rows.filter(r => r.kind === 'ctx').length, 6);
  });

  test('each op of a patch has a title naming cells as the user sees them, never by id', () => {
    const patch: IPatch = {
      path: 'a.ipynb',
      ops: [
        { op: 'insert', after_id: null, cell: { id: 'n1', cell_type: 'code', source: 'x\ny' } },
        { op: 'delete', cell_id: 'c2', expected_source: 'old' },
        { op: 'move', cell_id: 'c3', after_id: 'c1' }
      ]
    };
    const cells = [
      { id: 'c1', source: 'import pandas as pd' },
      { id: 'c2', source: 'old' },
      { id: 'c3', source: '\ndf.head()' }
    ];
    const names = (id: string, source?: string): string => {
      const at = cells.findIndex(c => c.id === id);
      return at < 0 ? cellName(null, source ?? '') : cellName(at + 1, cells[at].source);
    };
    const ops = patchDiff(patch, names);
    assert.deepEqual(ops.map(o => o.title), [
      'New code cell at the top',
      'Delete cell 2 “old”',
      'Move cell 3 “df.head()” after cell 1 “import pandas as pd”'
    ]);
    // Not open here: the cell is named by the source it had.
    assert.deepEqual(patchDiff(patch).map(o => o.title).slice(0, 2), [
      'New code cell at the top',
      'Delete a cell “old”'
    ]);
    assert.deepEqual(ops[0].rows.map(r => r.kind), ['add', 'add']);
    assert.deepEqual(ops[1].rows, [{ kind: 'del', text: 'old' }]);
  });
});

describe('fitting cell outputs into one frame', () => {
  test('small outputs pass unchanged', () => {
    const outputs = [{ output_type: 'stream', name: 'stdout', text: '42\n' }];
    assert.deepEqual(fitOutputs(outputs, 1000), outputs);
  });

  test('big images are dropped but their text kept, long text cut', () => {
    const outputs = [
      { output_type: 'display_data', data: { 'image/png': 'A'.repeat(200_000), 'text/plain': '<Figure>' }, metadata: {} },
      { output_type: 'stream', name: 'stdout', text: 'x'.repeat(50_000) }
    ];
    const fitted = fitOutputs(outputs, 8000);
    assert.ok(JSON.stringify(fitted).length <= 8000);
    assert.deepEqual((fitted[0].data as Record<string, unknown>), { 'text/plain': '<Figure>' });
    assert.match(String(fitted[1].text), /characters cut/);
  });

  test('rich data without a text form says what was omitted', () => {
    const fitted = fitOutputs([{ output_type: 'display_data', data: { 'image/png': 'A'.repeat(5000) } }], 500);
    assert.deepEqual(fitted[0].data, { 'text/plain': '[image/png output omitted]' });
  });
});

describe('connection words', () => {
  test('reconnecting says why, when the next try is, and offers Retry', () => {
    const t = connectionText({ state: 'reconnecting', reason: 'the connection was lost', retryAt: 5_000, attempt: 2 }, 1_000);
    assert.equal(t.label, 'Reconnecting…');
    assert.match(t.message ?? '', /the connection was lost/);
    assert.equal(t.countdown, 'Next try in 4 s.');
    assert.equal(t.canRetry, true);
  });

  test('open has no banner; incompatible explains', () => {
    assert.equal(connectionText({ state: 'open', reason: null, retryAt: null, attempt: 0 }, 0).message, null);
    const bad = connectionText({ state: 'incompatible', reason: 'protocol 2', retryAt: null, attempt: 0 }, 0);
    assert.match(bad.message ?? '', /protocol 2/);
    assert.equal(bad.canRetry, false);
  });
});

describe('failures in words', () => {
  const api = (status: number, code: string | null, retry: number | null = null) =>
    new ApiError(new Response('', { status }), 'server says', code, retry);

  test('HTTP statuses and codes', () => {
    assert.equal(describeFailure(new ServerConnection.NetworkError(new TypeError('x'))).kind, 'unreachable');
    assert.equal(describeFailure(api(401, 'token_expired')).kind, 'signed_out');
    assert.equal(describeFailure(api(403, 'insufficient_scope')).kind, 'forbidden');
    assert.equal(describeFailure(api(403, null)).kind, 'forbidden');
    assert.equal(describeFailure(api(404, null)).kind, 'not_installed');
    assert.equal(describeFailure(api(404, 'unknown_conversation')).kind, 'bad_request');
    assert.equal(describeFailure(api(429, 'quota_exceeded')).kind, 'quota');
    assert.match(describeFailure(api(429, 'rate_limited', 12)).message, /12 s/);
    assert.equal(describeFailure(api(503, 'no_model')).kind, 'no_model');
    assert.match(describeFailure(api(503, 'no_model')).message, /ANTHROPIC_API_KEY/);
    assert.equal(describeFailure(api(500, null)).kind, 'server');
  });

  test('every stable protocol code gets its own words', () => {
    for (const code of [
      'quota_exceeded', 'rate_limited', 'forbidden', 'no_model', 'unknown_model', 'provider_auth',
      'provider_overloaded', 'timeout', 'run_active', 'too_large', 'limit_exceeded', 'interrupted',
      'unknown_conversation', 'already_decided', 'approval_expired', 'run_not_active',
      'bad_arguments', 'internal', 'provider_bad_request', 'kernel_died'
    ]) {
      const f = explainCode(code, 'raw server text');
      assert.ok(f.message.length > 10, code);
      assert.equal(f.code, code);
    }
    assert.equal(explainCode('brand_new_code', 'what the server said').message, 'what the server said');
  });
});

describe('tool call descriptions', () => {
  test('known tools in words, cells by position and first line, others by name', () => {
    const names = (id: string): string => (id === 'c3' ? cellName(3, 'df = load()\n') : cellName(null, ''));
    assert.equal(
      describeCall('insert_cell', { path: 'a.ipynb', after_id: 'c3', source: 'x' }, names),
      'Insert a code cell into a.ipynb after cell 3 “df = load()”'
    );
    assert.equal(describeCall('run_cell', { path: 'a.ipynb', cell_id: 'c3' }, names), 'Run cell 3 “df = load()” of a.ipynb in its kernel');
    // Never the id, even when the cell is not known here.
    assert.equal(describeCall('run_cell', { path: 'a.ipynb', cell_id: 'c1' }), 'Run a cell of a.ipynb in its kernel');
    assert.equal(describeCall('frobnicate', { a: 1, b: 2 }), 'Call frobnicate (a, b)');
  });
});

describe('Backoff', () => {
  test('equal jitter keeps each delay between half and all of its ceiling', () => {
    const low = new Backoff({ initialMs: 100, maxMs: 1000, factor: 2 }, () => 0);
    const high = new Backoff({ initialMs: 100, maxMs: 1000, factor: 2 }, () => 0.99999);
    assert.deepEqual([1, 2, 3, 4, 5].map(() => low.next()), [50, 100, 200, 400, 500]);
    assert.deepEqual([1, 2, 3, 4, 5].map(() => high.next()), [100, 200, 400, 800, 1000]);
    low.reset();
    assert.equal(low.next(), 50);
  });
});
