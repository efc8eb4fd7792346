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
  const response = await ServerConnection.makeRequest(apiUrl(path, settings), init, settings);
  const data = decodeBody(await response.text());
  if (!response.ok) {
    throw apiError(response, data);
  }
  return data;
}

/** The full URL of `aiide/api/<path>` on the server. */
export function apiUrl(path: string, settings: ServerConnection.ISettings): string {
  return URLExt.join(settings.baseUrl, API_PREFIX, path);
}

/** A body as JSON when it is JSON, else as its text (`null` when empty). */
export function decodeBody(text: string): unknown {
  if (text.length === 0) {
    return null;
  }
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The `ApiError` for a non-2xx `response` whose decoded body is `data`. */
export function apiError(response: Response, data: unknown): ApiError {
  const retryAfter = Number(response.headers.get('Retry-After'));
  return new ApiError(
    response,
    bodyString(data, 'message'),
    bodyString(data, 'code') ?? null,
    Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null
  );
}
