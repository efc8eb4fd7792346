/** Client for the knowledge index (`/aiide/api/knowledge/...`), used by `/learn`. */
import type { ServerConnection } from '@jupyterlab/services';

import { field, isString, objectBody } from './json';
import { requestAPI } from './request';

const WHAT = 'knowledge job';

export interface ILearnJob {
  id: string;
  path: string;
  /** queued, running, done or failed. */
  status: string;
  filesDone: number;
  filesTotal: number;
  detail: string;
}

export function parseJob(data: unknown): ILearnJob {
  const body = objectBody(data, WHAT);
  const progress = objectBody(body.progress ?? {}, WHAT);
  const count = (v: unknown): number => (typeof v === 'number' ? v : 0);
  return {
    id: field(body, 'id', isString, WHAT, '$'),
    path: field(body, 'path', isString, WHAT, '$'),
    status: field(body, 'status', isString, WHAT, '$'),
    filesDone: count(progress.files_done),
    filesTotal: count(progress.files_total),
    detail: typeof body.detail === 'string' ? body.detail : ''
  };
}

/** Starts indexing a file or folder ("" is the whole server root). */
export async function startLearning(
  path: string,
  settings: ServerConnection.ISettings
): Promise<ILearnJob> {
  const init: RequestInit = { method: 'POST', body: JSON.stringify({ path }) };
  return parseJob(await requestAPI('knowledge/index', settings, init));
}

export async function fetchJob(
  id: string,
  settings: ServerConnection.ISettings
): Promise<ILearnJob> {
  return parseJob(await requestAPI(`knowledge/jobs/${encodeURIComponent(id)}`, settings));
}
