/** Client for `POST /aiide/api/complete` (inline completion). */
import { ServerConnection } from '@jupyterlab/services';

import { field, isNumber, isString, objectBody } from './json';
import type { ICompleteRequest, ICompleteResponse } from './protocol';
import { apiError, apiUrl, decodeBody } from './request';

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

/**
 * Asks for a streamed completion (`"stream": true`): `onText` gets each longer view of the
 * ghost text as the model writes it; the promise gives the final answer. An error after
 * the first line (the status was already 200) throws an `ApiError` with its `code`, as a
 * 502 (the answer broke off upstream).
 */
export async function streamCompletion(
  body: ICompleteRequest,
  settings: ServerConnection.ISettings,
  signal: AbortSignal,
  onText: (text: string) => void
): Promise<ICompleteResponse> {
  const init: RequestInit = {
    method: 'POST',
    body: JSON.stringify({ ...body, stream: true }),
    signal
  };
  const response = await ServerConnection.makeRequest(apiUrl('complete', settings), init, settings);
  if (!response.ok || !response.body) {
    throw apiError(response, decodeBody(await response.text()));
  }
  let final: ICompleteResponse | null = null;
  for await (const line of ndjsonLines(response.body)) {
    const data = objectBody(line, WHAT);
    if (typeof data.code === 'string') {
      throw apiError(new Response(null, { status: 502 }), data);
    }
    if (data.done === true) {
      final = parseCompletion({ completion: data.completion, model: data.model, usage: data.usage });
    } else {
      onText(field(data, 'completion', isString, WHAT, '$'));
    }
  }
  if (final === null) {
    throw apiError(new Response(null, { status: 502 }), {
      code: 'provider_unavailable',
      message: 'the completion ended before its final answer'
    });
  }
  return final;
}

/** Each JSON line of an NDJSON body, as it arrives. */
async function* ndjsonLines(body: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let pending = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        break;
      }
      pending += decoder.decode(value, { stream: true });
      let newline = pending.indexOf('\n');
      while (newline >= 0) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (line) {
          yield JSON.parse(line);
        }
        newline = pending.indexOf('\n');
      }
    }
    if (pending.trim()) {
      yield JSON.parse(pending);
    }
  } finally {
    reader.releaseLock();
  }
}
