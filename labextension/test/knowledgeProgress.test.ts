/**
 * Indexing progress: job events of the event bus and job reports of the REST API,
 * folded per job for the progress bar (this user's jobs only, never going back).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Signal } from '@lumino/signaling';

import { listenForJobs } from '../src/knowledge/events';
import {
  JOB_EVENTS,
  JobTracker,
  describeJob,
  fraction,
  parseJobEvent,
  parseJobReport,
  type IJobProgress
} from '../src/knowledge/progress';

function emission(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schema_id: JOB_EVENTS,
    job_id: 'j1',
    user: 'ada',
    path: 'analysis',
    trigger: 'request',
    status: 'running',
    files_done: 0,
    files_total: 4,
    chunks_added: 0,
    errors_total: 0,
    ...fields
  };
}

const job = (fields: Record<string, unknown> = {}): IJobProgress => parseJobEvent(emission(fields))!;

function tracker(user: string | null = 'ada', clock = { now: 0 }): JobTracker {
  return new JobTracker({ user: () => user, now: () => clock.now, keepMs: 4000 });
}

describe('job events', () => {
  test('an event of the job schema is read; other schemas and malformed ones are not', () => {
    const parsed = parseJobEvent(emission({ files_done: 2, chunks_added: 30, errors_total: 1 }));
    assert.deepEqual(parsed, {
      id: 'j1',
      user: 'ada',
      path: 'analysis',
      trigger: 'request',
      status: 'running',
      filesDone: 2,
      filesTotal: 4,
      chunksAdded: 30,
      chunksUpdated: 0,
      chunksRemoved: 0,
      errorsTotal: 1,
      skippedTotal: 0,
      detail: ''
    });
    assert.equal(parseJobEvent({ ...emission(), schema_id: 'https://events.jupyter.org/x' }), null);
    assert.equal(parseJobEvent(emission({ status: 'exploded' })), null);
    assert.equal(parseJobEvent(emission({ job_id: 7 })), null);
    assert.equal(parseJobEvent('nope'), null);
    assert.equal(parseJobEvent(emission({ files_done: -3 }))?.filesDone, 0);
  });

  test('a REST job report reads the same', () => {
    const report = {
      id: 'j1',
      path: 'analysis',
      trigger: 'request',
      status: 'done',
      progress: { files_done: 4, files_total: 4 },
      chunks: { added: 40, updated: 2, removed: 0, unchanged: 0 },
      errors: [{ path: 'bad.ipynb', reason: 'not JSON' }],
      errors_total: 1,
      skipped: [],
      skipped_total: 0,
      detail: ''
    };
    const parsed = parseJobReport(report)!;
    assert.equal(parsed.status, 'done');
    assert.equal(parsed.filesDone, 4);
    assert.equal(parsed.chunksAdded + parsed.chunksUpdated, 42);
    assert.equal(parsed.errorsTotal, 1);
    assert.equal(parseJobReport({ id: 'x' }), null);
  });

  test('the bar fills with files done, is full when the job ends, unknown before counting', () => {
    assert.equal(fraction(job({ files_done: 1, files_total: 4 })), 0.25);
    assert.equal(fraction(job({ status: 'queued', files_total: 0 })), null);
    assert.equal(fraction(job({ status: 'failed', files_done: 1 })), 1);
  });

  test('the bar says what, files, chunks and errors', () => {
    assert.deepEqual(describeJob(job({ files_done: 1, chunks_added: 12, errors_total: 2 })), {
      title: 'Learning analysis',
      counts: '1 of 4 files · 12 chunks · 2 errors'
    });
    assert.deepEqual(describeJob(job({ status: 'done', files_done: 4, chunks_added: 1, path: '' })), {
      title: 'Learned the workspace',
      counts: '4 of 4 files · 1 chunk embedded'
    });
    const failed = describeJob(job({ status: 'failed', detail: 'failed: the embedding model is unavailable' }));
    assert.equal(failed.title, 'Could not learn analysis: the embedding model is unavailable');
    assert.equal(describeJob(job({ trigger: 'save', path: 'a.ipynb' })).title, 'Updating a.ipynb');
  });

  test('a job waiting for the embedding model install shows the install step', () => {
    const waiting = job({
      files_done: 0,
      files_total: 0,
      detail:
        'waiting for the embedding model: the embedding model is being installed in the ' +
        'background (step 2 of 4: exporting the model to ONNX); search works when it is done'
    });
    assert.deepEqual(describeJob(waiting), {
      title: 'Installing the embedding model to learn analysis',
      counts: 'step 2 of 4: exporting the model to ONNX'
    });
    assert.equal(describeJob({ ...waiting, status: 'queued' }).title, 'Waiting to learn analysis');
  });
});

describe('JobTracker', () => {
  test("this user's jobs are shown, another user's are not", () => {
    const t = tracker('ada');
    assert.equal(t.apply(job()), true);
    assert.equal(t.apply(job({ job_id: 'j2', user: 'bob' })), false);
    assert.deepEqual(t.jobs.map(j => j.id), ['j1']);
  });

  test('a job started here is shown whatever the server calls its user', () => {
    const t = tracker(null);
    t.track(job({ user: 'server-side-name', status: 'queued' }));
    assert.equal(t.apply(job({ user: 'server-side-name', files_done: 2 })), true);
    assert.equal(t.get('j1')?.filesDone, 2);
  });

  test('progress never goes back: stale or repeated events are ignored', () => {
    const t = tracker();
    let changes = 0;
    t.changed.connect(() => changes++);
    t.apply(job({ files_done: 3 }));
    assert.equal(t.apply(job({ files_done: 1 })), false);
    assert.equal(t.apply(job({ files_done: 3 })), false);
    assert.equal(t.apply(job({ status: 'queued' })), false);
    t.apply(job({ status: 'done', files_done: 4 }));
    assert.equal(t.apply(job({ status: 'running', files_done: 4 })), false);
    assert.equal(t.apply(job({ status: 'failed' })), false);
    assert.equal(t.get('j1')?.status, 'done');
    assert.equal(changes, 2);
  });

  test('a job that ends before its POST answers is not lost', () => {
    const t = tracker(null); // no user known: only tracked jobs show
    t.apply(job({ status: 'done', files_done: 4 }));
    assert.equal(t.jobs.length, 0);
    t.track(job({ status: 'queued' }));
    assert.equal(t.get('j1')?.status, 'done');
  });

  test('finished background jobs leave after a while; jobs started here stay', () => {
    const clock = { now: 0 };
    const t = tracker('ada', clock);
    t.apply(job({ job_id: 'save1', trigger: 'save', status: 'done', files_total: 1, files_done: 1 }));
    t.track(job({ job_id: 'mine', status: 'done' }));
    assert.equal(t.expiring, true);
    clock.now = 3999;
    assert.equal(t.prune(), false);
    clock.now = 4000;
    assert.equal(t.prune(), true);
    assert.deepEqual(t.jobs.map(j => j.id), ['mine']);
    assert.equal(t.expiring, false); // nothing left for the timer to do
    t.dismiss('mine');
    assert.equal(t.jobs.length, 0);
  });

  test('deleting a file is not shown as a job', () => {
    const t = tracker();
    assert.equal(t.apply(job({ trigger: 'delete' })), false);
  });
});

describe('listening on the event bus', () => {
  test('job events reach the tracker, other events do not, nothing after dispose', () => {
    const owner = {};
    const stream = new Signal<object, Record<string, unknown>>(owner);
    const events = { stream } as unknown as Parameters<typeof listenForJobs>[0];
    const t = tracker();
    const listening = listenForJobs(events, t);
    stream.emit({ schema_id: 'https://events.jupyter.org/jupyter_server/contents_service/v1', action: 'save' });
    stream.emit(emission({ files_done: 1 }));
    assert.equal(t.get('j1')?.filesDone, 1);
    listening.dispose();
    assert.ok(listening.isDisposed);
    stream.emit(emission({ files_done: 2 }));
    assert.equal(t.get('j1')?.filesDone, 1);
  });
});
