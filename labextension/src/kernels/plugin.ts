/** Plugin `aiide:kernel-notices`: tells the user why a sandboxed kernel died. */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';

import { fetchKernelEvents } from '../api/kernelEvents';
import { notifyPersistent } from '../notify';
import { KernelNoticeWatcher } from './watcher';

export const kernelNoticesPlugin: JupyterFrontEndPlugin<void> = {
  id: 'aiide:kernel-notices',
  description:
    'Shows why a sandboxed kernel was stopped (memory limit, timeout, ...) when it dies or restarts.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker): void => {
    const settings = app.serviceManager.serverSettings;
    const watcher = new KernelNoticeWatcher({
      fetchEvents: async kernelId => (await fetchKernelEvents(kernelId, settings)).events,
      notify: event => void notifyPersistent('error', event.message)
    });
    tracker.forEach(panel => watcher.watch(panel.sessionContext));
    tracker.widgetAdded.connect((_, panel) => watcher.watch(panel.sessionContext));
  }
};
