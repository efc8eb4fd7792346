/** The aiide JupyterLab extension: its plugins, one concern each. */
import type { JupyterFrontEndPlugin } from '@jupyterlab/application';

import { cellActionsPlugin } from './cells/plugin';
import { chatPlugin } from './chat/plugin';
import { inlineCompletionPlugin } from './completion/plugin';
import { courseNoticePlugin } from './instructor/notice';
import { instructorPlugin } from './instructor/plugin';
import { kernelNoticesPlugin } from './kernels/plugin';
import { outputIsolationPlugin } from './outputs/plugin';
import { statusPlugin } from './status/plugin';
import { assistantStatusPlugin } from './usage/plugin';

const plugins: JupyterFrontEndPlugin<any>[] = [
  statusPlugin,
  outputIsolationPlugin,
  kernelNoticesPlugin,
  chatPlugin,
  cellActionsPlugin,
  inlineCompletionPlugin,
  assistantStatusPlugin,
  instructorPlugin,
  courseNoticePlugin
];

export default plugins;
