import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ServerConnection } from '@jupyterlab/services';

import { streamCompletion } from '../src/api/complete';
import { describeFailure } from '../src/api/failure';
import { ApiError } from '../src/api/request';

/** Server settings whose fetch answers with `chunks` (split anywhere, as a network does). */
function serving(chunks: string[], status = 200, sent: RequestInit[] = []) {
  const fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    sent.push(input instanceof Request ? { body: await input.text() } : (init ?? {}));
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of chunks) {
          controller.enqueue(encoder.encode(chunk));
        }
        controller.close();
      }
    });
    return new Response(body, { status, headers: { 'Content-Type': 'application/x-ndjson' } });
  };
  return ServerConnection.makeSettings({ baseUrl: 'http://lab/', fetch });
}

const body = { prefix: 'x = ' };
const done = '{"completion": "f(1)", "done": true, "model": "local", "usage": {"input_tokens": 3, "output_tokens": 2}}\n';

describe('streamed completion client', () => {
  test('each line of growing text reaches onText, then the final answer returns', async () => {
    const sent: RequestInit[] = [];
    const texts: string[] = [];
    const settings = serving(['{"completion": "f"}\n{"compl', 'etion": "f(1"}\n', done], 200, sent);
    const answer = await streamCompletion(body, settings, new AbortController().signal, t =>
      texts.push(t)
    );
    assert.deepEqual(texts, ['f', 'f(1']);
    assert.deepEqual(answer, {
      completion: 'f(1)',
      model: 'local',
      usage: { input_tokens: 3, output_tokens: 2 }
    });
    assert.equal(JSON.parse(String(sent[0].body)).stream, true);
  });

  test('an error line after text throws with its code', async () => {
    const settings = serving([
      '{"completion": "f"}\n',
      '{"code": "provider_overloaded", "message": "try later"}\n'
    ]);
    await assert.rejects(
      streamCompletion(body, settings, new AbortController().signal, () => undefined),
      (error: unknown) =>
        error instanceof ApiError &&
        error.code === 'provider_overloaded' &&
        describeFailure(error).kind === 'provider'
    );
  });

  test('a refusal before any text keeps its status and code', async () => {
    const settings = serving(['{"code": "quota_exceeded", "message": "daily tokens"}'], 429);
    await assert.rejects(
      streamCompletion(body, settings, new AbortController().signal, () => undefined),
      (error: unknown) => error instanceof ApiError && error.response.status === 429
    );
  });

  test('an answer cut off before its final line is an error, not an empty completion', async () => {
    const settings = serving(['{"completion": "f"}\n']);
    await assert.rejects(
      streamCompletion(body, settings, new AbortController().signal, () => undefined),
      (error: unknown) => error instanceof ApiError && error.code === 'provider_unavailable'
    );
  });
});
