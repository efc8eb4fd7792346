/**
 * One place that talks HTTP to the aiide server extension, through JupyterLab's
 * ServerConnection (base URL, XSRF token and auth headers handled there).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** The URL prefix of every aiide route, relative to the server's base URL. */
export const API_PREFIX = 'aiide/api';

/**
 * GETs (or sends) `aiide/api/<path>` and returns the decoded JSON body.
 *
 * Throws `ServerConnection.NetworkError` when the server cannot be reached and
 * `ServerConnection.ResponseError` for a non-2xx answer.
 */
export async function requestAPI(
  path: string,
  settings: ServerConnection.ISettings,
  init: RequestInit = {}
): Promise<unknown> {
  const url = URLExt.join(settings.baseUrl, API_PREFIX, path);
  const response = await ServerConnection.makeRequest(url, init, settings);
  const text = await response.text();
  let data: unknown = null;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const message =
      typeof data === 'object' && data !== null && 'message' in data
        ? String((data as { message: unknown }).message)
        : undefined;
    throw new ServerConnection.ResponseError(response, message);
  }
  return data;
}
