/**
 * One place that talks HTTP to the aiide server extension, through JupyterLab's
 * ServerConnection (base URL, XSRF token and auth headers handled there).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** The URL prefix of every aiide route, relative to the server's base URL. */
export const API_PREFIX = 'aiide/api';

/** A non-2xx answer, with the stable `code` of its JSON body and any `Retry-After`. */
export class ApiError extends ServerConnection.ResponseError {
  constructor(
    response: Response,
    message: string | undefined,
    readonly code: string | null,
    readonly retryAfterSeconds: number | null
  ) {
    super(response, message);
    this.name = 'ApiError';
  }
}

function bodyString(data: unknown, key: string): string | undefined {
  return typeof data === 'object' && data !== null && key in data
    ? String((data as Record<string, unknown>)[key])
    : undefined;
}

/**
 * GETs (or sends) `aiide/api/<path>` and returns the decoded JSON body.
 *
 * Throws `ServerConnection.NetworkError` when the server cannot be reached and
 * `ApiError` (a `ServerConnection.ResponseError`) for a non-2xx answer.
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
    const retryAfter = Number(response.headers.get('Retry-After'));
    throw new ApiError(
      response,
      bodyString(data, 'message'),
      bodyString(data, 'code') ?? null,
      Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null
    );
  }
  return data;
}
