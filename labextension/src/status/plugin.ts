/** Plugin `aiide:status`: the status-bar item and the "something is missing" notices. */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';

import { fetchStatus } from '../api/status';
import type { IStatusResponse } from '../api/types';
import {
  DEFAULT_DESCRIBE_OPTIONS,
  type IDescribeOptions,
  LOADING_VIEW,
  describeStatus,
  describeUnreachable
} from './describe';
import { NoticeBoard } from './noticeBoard';
import { StatusItem } from './widget';

const PLUGIN_ID = 'aiide:status';

function readOptions(settings: ISettingRegistry.ISettings): IDescribeOptions {
  const show = settings.composite.showModelWarning;
  return { showModelWarning: typeof show === 'boolean' ? show : true };
}

export const statusPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Shows the sandbox and model state of aiide in the status bar.',
  autoStart: true,
  optional: [IStatusBar, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    statusBar: IStatusBar | null,
    registry: ISettingRegistry | null
  ): void => {
    const serverSettings = app.serviceManager.serverSettings;
    const board = new NoticeBoard();
    let options = DEFAULT_DESCRIBE_OPTIONS;
    let last: IStatusResponse | null = null;
    let lastError: string | null = null;

    const item = new StatusItem(() => void refresh());
    item.render(LOADING_VIEW);
    statusBar?.registerStatusItem(PLUGIN_ID, { item, align: 'left', rank: 50 });

    const render = (): void => {
      const view = last
        ? describeStatus(last, options)
        : describeUnreachable(lastError ?? 'no answer yet');
      item.render(view);
      board.sync(view.notices);
    };

    const load = async (): Promise<void> => {
      try {
        last = await fetchStatus(serverSettings);
        lastError = null;
      } catch (error) {
        console.warn('aiide: status request failed', error);
        last = null;
        lastError = error instanceof Error ? error.message : String(error);
      }
    };

    const refresh = async (): Promise<void> => {
      await load();
      render();
    };

    const loadSettings = async (): Promise<void> => {
      if (!registry) {
        return;
      }
      try {
        const settings = await registry.load(PLUGIN_ID);
        options = readOptions(settings);
        settings.changed.connect(() => {
          options = readOptions(settings);
          if (last || lastError) {
            render();
          }
        });
      } catch (error) {
        console.warn('aiide: could not load settings, using defaults', error);
      }
    };

    // Ask the server while the layout restores; raise notices once the shell is ready.
    void Promise.all([loadSettings(), load(), app.restored])
      .catch(error => console.warn('aiide: start-up did not complete', error))
      .then(render);
  }
};
