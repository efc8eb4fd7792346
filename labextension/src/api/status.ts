/** Client for `GET /aiide/api/status`. */
import type { ServerConnection } from '@jupyterlab/services';

import { requestAPI } from './request';
import type { IStatusResponse } from './types';
import { parseStatus } from './validate';

/** What the server can do right now: sandbox backends, limits, model configuration. */
export async function fetchStatus(
  settings: ServerConnection.ISettings
): Promise<IStatusResponse> {
  return parseStatus(await requestAPI('status', settings));
}
