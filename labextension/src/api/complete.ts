/** Client for `POST /aiide/api/complete` (inline completion). */
import type { ServerConnection } from '@jupyterlab/services';

import { field, isNumber, isString, objectBody } from './json';
import type { ICompleteRequest, ICompleteResponse } from './protocol';
import { requestAPI } from './request';

const WHAT = 'completion';

export function parseCompletion(data: unknown): ICompleteResponse {
  const body = objectBody(data, WHAT);
  const usage = objectBody(body.usage, WHAT);
  return {
    completion: field(body, 'completion', isString, WHAT, '$'),
    model: field(body, 'model', isString, WHAT, '$'),
    usage: {
      input_tokens: field(usage, 'input_tokens', isNumber, WHAT, '$.usage'),
      output_tokens: field(usage, 'output_tokens', isNumber, WHAT, '$.usage')
    }
  };
}

/** Asks for a completion; aborting `signal` closes the request, which cancels the model call. */
export async function requestCompletion(
  body: ICompleteRequest,
  settings: ServerConnection.ISettings,
  signal: AbortSignal
): Promise<ICompleteResponse> {
  const init: RequestInit = { method: 'POST', body: JSON.stringify(body), signal };
  return parseCompletion(await requestAPI('complete', settings, init));
}
