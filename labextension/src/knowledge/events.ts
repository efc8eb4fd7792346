/**
 * Indexing progress from Jupyter's event bus (`/api/events/subscribe`, JupyterLab's
 * `serviceManager.events`): the server emits a job event at most four times a second
 * per job and on every status change (aiide_server_ext/knowledge/events/job.v1.json).
 */
import type { Event } from '@jupyterlab/services';
import type { IDisposable } from '@lumino/disposable';

import { parseJobEvent, type JobTracker } from './progress';

export function listenForJobs(events: Event.IManager, tracker: JobTracker): IDisposable {
  const onEvent = (_: Event.IManager, emission: Event.Emission): void => {
    const job = parseJobEvent(emission);
    if (job) {
      tracker.apply(job);
    }
  };
  events.stream.connect(onEvent);
  let disposed = false;
  return {
    get isDisposed() {
      return disposed;
    },
    dispose: () => {
      if (!disposed) {
        disposed = true;
        events.stream.disconnect(onEvent);
      }
    }
  };
}
