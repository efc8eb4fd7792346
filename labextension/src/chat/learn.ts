/**
 * `/learn <path>`: index a file or folder into the knowledge base, reporting progress
 * until the job ends.
 */
import type { ServerConnection } from '@jupyterlab/services';

import { describeFailure } from '../api/failure';
import { fetchJob, startLearning, type ILearnJob } from '../api/knowledge';

const POLL_MS = 1000;

function progress(job: ILearnJob): string {
  const files = job.filesTotal ? ` (${job.filesDone} of ${job.filesTotal} files)` : '';
  switch (job.status) {
    case 'done':
      return `Learned ${job.path || 'the workspace'}${files}: answers can now cite it.`;
    case 'failed':
      return `Could not learn ${job.path || 'the workspace'}: ${job.detail || 'the job failed'}`;
    default:
      return `Learning ${job.path || 'the workspace'}…${files}`;
  }
}

export async function learn(
  path: string,
  settings: ServerConnection.ISettings,
  report: (text: string) => void
): Promise<void> {
  try {
    let job = await startLearning(path, settings);
    report(progress(job));
    while (job.status !== 'done' && job.status !== 'failed') {
      await new Promise(resolve => setTimeout(resolve, POLL_MS));
      job = await fetchJob(job.id, settings);
      report(progress(job));
    }
  } catch (error) {
    report(`Could not learn ${path || 'the workspace'}: ${describeFailure(error).message}`);
  }
}
