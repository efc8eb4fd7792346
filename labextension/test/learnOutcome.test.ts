/**
 * What a `/learn` says in the conversation: the files left out and why; a failure in the
 * user's words by its code, never the report's detail (it names server paths).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { IJobReport } from '../src/api/knowledge';
import { outcome } from '../src/chat/learn';
import { parseJobReport } from '../src/knowledge/progress';

function report(fields: Record<string, unknown>, rest: Partial<IJobReport> = {}): IJobReport {
  const job = parseJobReport({ id: 'j1', path: 'data', trigger: 'request', status: 'done', ...fields });
  assert.ok(job);
  return { job, skipped: [], errors: [], code: '', ...rest };
}

describe('/learn outcome', () => {
  test('the files left out are listed with their reasons', () => {
    const said = outcome(
      report(
        { progress: { files_done: 3, files_total: 3 }, skipped_total: 1, errors_total: 1 },
        {
          skipped: [{ path: 'data/scores.bin', reason: 'not a text format that is indexed (.bin)' }],
          errors: [{ path: 'data/bad.ipynb', reason: 'not valid JSON' }]
        }
      )
    );
    assert.equal(said.failed, false);
    assert.equal(said.text, 'Learned data (3 files): answers can now cite it. 2 files left out:');
    assert.deepEqual(said.items, [
      { path: 'data/scores.bin', reason: 'not a text format that is indexed (.bin)' },
      { path: 'data/bad.ipynb', reason: 'could not be read: not valid JSON' }
    ]);
  });

  test('a missing model is said without the server paths of the detail', () => {
    const detail =
      'failed: embedding model all-MiniLM-L6-v2 is not installed in /srv/jupyter/models (missing model.onnx)';
    const said = outcome(report({ status: 'failed', detail }, { code: 'model_unavailable' }));
    assert.equal(said.failed, true);
    assert.match(said.text, /^Could not learn data: the embedding model it needs is not available/);
    assert.doesNotMatch(said.text, /\/srv/);
  });

  test('a failure without a known code shows the detail, without its prefix', () => {
    const said = outcome(report({ status: 'failed', detail: 'failed: data does not exist' }));
    assert.equal(said.text, 'Could not learn data: data does not exist');
  });
});
