/**
 * `/learn <path>`: index a file or folder into the knowledge base. The job's progress
 * comes as server events into the tracker (the chat's progress bar draws it); the job
 * report is also fetched now and then, so a missed event or a blocked event socket
 * only makes the bar slower, never stuck.
 */
import type { ServerConnection } from '@jupyterlab/services';

import { describeFailure } from '../api/failure';
import { fetchJob, startLearning } from '../api/knowledge';
import { isFinished, type IJobProgress, type JobTracker } from '../knowledge/progress';

/** Between two reads of the job report while no event comes, in ms. */
const POLL_MS = 2000;

function outcome(job: IJobProgress): string {
  const what = job.path || 'the workspace';
  if (job.status === 'failed') {
    return `Could not learn ${what}: ${job.detail.replace(/^failed:\s*/, '') || 'the job failed'}`;
  }
  const problems = job.errorsTotal
    ? ` (${job.errorsTotal} file${job.errorsTotal === 1 ? '' : 's'} could not be read: see the job report)`
    : '';
  return `Learned ${what}: answers can now cite it${problems}.`;
}

/** Resolves when the tracker changes for `id`, or after `ms`. */
function nextChange(tracker: JobTracker, id: string, ms: number): Promise<void> {
  return new Promise(resolve => {
    const done = (): void => {
      tracker.changed.disconnect(onChange);
      window.clearTimeout(timer);
      resolve();
    };
    const onChange = (): void => {
      const job = tracker.get(id);
      if (job && isFinished(job)) {
        done();
      }
    };
    const timer = window.setTimeout(done, ms);
    tracker.changed.connect(onChange);
  });
}

export async function learn(
  path: string,
  settings: ServerConnection.ISettings,
  tracker: JobTracker,
  report: (text: string) => void
): Promise<void> {
  try {
    const started = await startLearning(path, settings);
    tracker.track(started);
    report('');
    let job = tracker.get(started.id) ?? started;
    while (!isFinished(job)) {
      await nextChange(tracker, started.id, POLL_MS);
      job = tracker.get(started.id) ?? job;
      if (!isFinished(job)) {
        tracker.apply(await fetchJob(started.id, settings));
        job = tracker.get(started.id) ?? job;
      }
    }
    report(outcome(job));
  } catch (error) {
    report(`Could not learn ${path || 'the workspace'}: ${describeFailure(error).message}`);
  }
}
