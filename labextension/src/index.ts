/** The aiide JupyterLab extension: its plugins, one concern each. */
import type { JupyterFrontEndPlugin } from '@jupyterlab/application';

import { kernelNoticesPlugin } from './kernels/plugin';
import { statusPlugin } from './status/plugin';

const plugins: JupyterFrontEndPlugin<void>[] = [statusPlugin, kernelNoticesPlugin];

export default plugins;
