/** Client for `GET /aiide/api/kernels/<kernel_id>/events`. */
import type { ServerConnection } from '@jupyterlab/services';

import { requestAPI } from './request';
import type { IKernelEventsResponse } from './types';
import { parseKernelEvents } from './validate';

/** What the server recorded about a kernel, e.g. why the sandbox stopped it. */
export async function fetchKernelEvents(
  kernelId: string,
  settings: ServerConnection.ISettings
): Promise<IKernelEventsResponse> {
  const path = `kernels/${encodeURIComponent(kernelId)}/events`;
  return parseKernelEvents(await requestAPI(path, settings));
}
