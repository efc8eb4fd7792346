/**
 * `/learn <path>`: index a file or folder into the knowledge base. The job's progress
 * comes as server events into the tracker (the chat's progress bar draws it); the job
 * report is also fetched now and then, so a missed event or a blocked event socket
 * only makes the bar slower, never stuck. What it came to is said in the conversation,
 * with the files left out and why.
 */
import type { ServerConnection } from '@jupyterlab/services';

import { describeFailure } from '../api/failure';
import { fetchJob, fetchJobReport, startLearning, type IJobFile, type IJobReport } from '../api/knowledge';
import { isFinished, type JobTracker } from '../knowledge/progress';

/** Between two reads of the job report while no event comes, in ms. */
const POLL_MS = 2000;

/** What a `/learn` came to, for the conversation: a sentence and the files left out. */
export interface ILearnOutcome {
  failed: boolean;
  text: string;
  /** Files skipped or unreadable, each with why. */
  items: IJobFile[];
}

/**
 * Failures in the user's words, by the report's code: its detail is for admins and
 * names server paths (the server logs it).
 */
const FAILURES: Record<string, string> = {
  model_unavailable:
    'the embedding model it needs is not available on this server (not installed, or ' +
    'its service cannot be reached). An administrator can see why in the server log; ' +
    '`jupyter aiide models install` installs the local model.',
  model_install_failed:
    'the embedding model it needs could not be installed on this server; it is tried ' +
    'again on the next /learn. An administrator can see why in the server log.',
  internal: 'something went wrong on the server. An administrator can see what in the server log.'
};

function plural(n: number, word: string): string {
  return `${n.toLocaleString()} ${word}${n === 1 ? '' : 's'}`;
}

export function outcome(report: IJobReport): ILearnOutcome {
  const { job } = report;
  const what = job.path || 'the workspace';
  if (job.status === 'failed') {
    const why =
      FAILURES[report.code] ?? (job.detail.replace(/^failed:\s*/, '') || 'the job failed');
    return { failed: true, text: `Could not learn ${what}: ${why}`, items: [] };
  }
  const items = [
    ...report.skipped,
    ...report.errors.map(f => ({ path: f.path, reason: `could not be read: ${f.reason}` }))
  ];
  const left = job.skippedTotal + job.errorsTotal;
  const unlisted = left - items.length;
  const files = job.filesTotal ? ` (${plural(job.filesTotal, 'file')})` : '';
  const tail = left
    ? ` ${plural(left, 'file')} left out${unlisted > 0 ? `, ${unlisted.toLocaleString()} not listed here` : ''}:`
    : '';
  return { failed: false, text: `Learned ${what}${files}: answers can now cite it.${tail}`, items };
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

/**
 * Indexes `path` ('' is the workspace), watching the job in the progress bar while it
 * runs; its outcome goes to the conversation, so the bar row goes when it is done.
 */
export async function learn(
  path: string,
  settings: ServerConnection.ISettings,
  tracker: JobTracker
): Promise<ILearnOutcome> {
  try {
    const started = await startLearning(path, settings);
    tracker.track(started);
    let job = tracker.get(started.id) ?? started;
    while (!isFinished(job)) {
      await nextChange(tracker, started.id, POLL_MS);
      job = tracker.get(started.id) ?? job;
      if (!isFinished(job)) {
        tracker.apply(await fetchJob(started.id, settings));
        job = tracker.get(started.id) ?? job;
      }
    }
    // The events say how many files were left out; the report says which, and why.
    const report = await fetchJobReport(started.id, settings).catch(
      (): IJobReport => ({ job, skipped: [], errors: [], code: '' })
    );
    tracker.dismiss(started.id);
    return outcome(report);
  } catch (error) {
    return {
      failed: true,
      text: `Could not learn ${path || 'the workspace'}: ${describeFailure(error).message}`,
      items: []
    };
  }
}
