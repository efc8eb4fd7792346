import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { IInlineCompletionContext } from '@jupyterlab/completer';
import { ServerConnection } from '@jupyterlab/services';

import type { IFailure } from '../src/api/failure';
import type { ICompleteRequest, ICompleteResponse } from '../src/api/protocol';
import { ApiError } from '../src/api/request';
import { AiideInlineProvider, MAX_PREFIX, languageOf } from '../src/completion/provider';

interface ICall {
  body: ICompleteRequest;
  signal: AbortSignal;
  onText(text: string): void;
  resolve(r: ICompleteResponse): void;
  reject(e: unknown): void;
}

function setup(now = () => 0, before = 'import numpy as np', editorText?: () => string | null) {
  const calls: ICall[] = [];
  const failures: IFailure[] = [];
  const provider = new AiideInlineProvider({
    complete: (body, signal, onText) =>
      new Promise((resolve, reject) => {
        calls.push({ body, signal, onText, resolve, reject });
        signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
      }),
    textBefore: () => before,
    path: () => 'analysis.ipynb',
    cellId: () => 'cell-2',
    editorText,
    onFailure: f => failures.push(f),
    now
  });
  return { provider, calls, failures };
}

const context = { widget: {}, triggerKind: 1 } as unknown as IInlineCompletionContext;
const request = (text: string, offset = text.length) => ({ text, offset, mimeType: 'text/x-ipython' });
const answer = (completion: string): ICompleteResponse => ({
  completion,
  model: 'claude-haiku',
  usage: { input_tokens: 1, output_tokens: 1 }
});

function apiError(status: number, code: string): ApiError {
  return new ApiError(new Response('{}', { status }), code, code, null);
}

describe('inline completion provider', () => {
  test('no model call for text the user has left or changed since the keystroke', async () => {
    let now: string | null = 'x = 1';
    const { provider, calls } = setup(undefined, undefined, () => now);
    now = ''; // Shift+Enter within the debounce: a new, empty cell is active
    assert.deepEqual(await provider.fetch(request('x = 1'), context), { items: [] });
    now = 'x = 12'; // typed on: the newer request is the one to answer
    assert.deepEqual(await provider.fetch(request('x = 1'), context), { items: [] });
    assert.equal(calls.length, 0);
    const pending = provider.fetch(request('x = 12'), context);
    assert.equal(calls.length, 1);
    calls[0].resolve(answer('3'));
    assert.deepEqual(await pending, { items: [{ insertText: '3' }] });
    now = null; // an editor whose text is unknown (a console): asked as before
    const unknown = provider.fetch(request('y = '), context);
    assert.equal(calls.length, 2);
    calls[1].resolve(answer('2'));
    await unknown;
  });

  test('sends the text around the cursor, the cells above, language and path', async () => {
    const { provider, calls } = setup();
    const pending = provider.fetch(request('def mean(xs):\n    return \nprint(1)', 25), context);
    const body = calls[0].body;
    assert.equal(body.prefix, 'import numpy as np\n\ndef mean(xs):\n    return ');
    assert.equal(body.suffix, '\nprint(1)');
    assert.equal(body.language, 'python');
    assert.equal(body.path, 'analysis.ipynb');
    assert.equal(body.cell_id, 'cell-2'); // a course's tutor mode: solution cells stay off
    assert.equal(body.max_tokens, 96);
    calls[0].resolve(answer('sum(xs) / len(xs)'));
    assert.deepEqual(await pending, { items: [{ insertText: 'sum(xs) / len(xs)' }] });
  });

  test('a newer request aborts the one in flight, whose answer is dropped', async () => {
    const { provider, calls } = setup();
    const first = provider.fetch(request('x = 1'), context);
    const second = provider.fetch(request('x = 12'), context);
    assert.equal(calls[0].signal.aborted, true);
    assert.deepEqual(await first, { items: [] });
    calls[1].resolve(answer('3'));
    assert.deepEqual(await second, { items: [{ insertText: '3' }] });
  });

  test('a late answer to a superseded request is not shown', async () => {
    const { provider, calls } = setup();
    const first = provider.fetch(request('a'), context);
    calls[0].resolve(answer('stale')); // arrives, but a newer request starts before it is read
    const second = provider.fetch(request('ab'), context);
    assert.deepEqual(await first, { items: [] });
    calls[1].resolve(answer('fresh'));
    assert.deepEqual(await second, { items: [{ insertText: 'fresh' }] });
  });

  test('an empty editor asks nothing', async () => {
    const { provider, calls } = setup(() => 0, '');
    assert.deepEqual(await provider.fetch(request('   '), context), { items: [] });
    assert.equal(calls.length, 0);
  });

  test('the prefix is capped', async () => {
    const { provider, calls } = setup();
    void provider.fetch(request('y'.repeat(MAX_PREFIX * 2)), context);
    assert.equal(calls[0].body.prefix.length, MAX_PREFIX);
  });

  test('failures never throw into the editor, and a refusal pauses the provider', async () => {
    let time = 0;
    const { provider, calls, failures } = setup(() => time);
    const p = provider.fetch(request('a'), context);
    calls[0].reject(apiError(429, 'quota_exceeded'));
    assert.deepEqual(await p, { items: [] });
    assert.equal(failures[0].kind, 'quota');
    assert.deepEqual(await provider.fetch(request('ab'), context), { items: [] });
    assert.equal(calls.length, 1, 'paused: no request');
    time = 10 * 60_000;
    void provider.fetch(request('abc'), context);
    assert.equal(calls.length, 2, 'the pause ends');
  });

  test('an unreachable server is reported but does not pause', async () => {
    const { provider, calls, failures } = setup();
    const p = provider.fetch(request('a'), context);
    calls[0].reject(new ServerConnection.NetworkError(new TypeError('Failed to fetch')));
    await p;
    assert.equal(failures[0].kind, 'unreachable');
    void provider.fetch(request('ab'), context);
    assert.equal(calls.length, 2);
  });

  test('configure reads the suggestion length', () => {
    const { provider, calls } = setup();
    provider.configure({ maxTokens: 200 });
    void provider.fetch(request('a'), context);
    assert.equal(calls[0].body.max_tokens, 200);
  });

  test('declares a debounce for JupyterLab\'s inline completer', () => {
    const { provider } = setup();
    assert.equal((provider.schema.default as { debouncerDelay: number }).debouncerDelay, 250);
  });

  test('languageOf maps editor MIME types', () => {
    assert.equal(languageOf('text/x-ipython'), 'python');
    assert.equal(languageOf('text/x-rsrc'), 'rsrc');
    assert.equal(languageOf('text/typescript'), 'typescript');
    assert.equal(languageOf(undefined), 'python');
  });

  test('ghost text shows the first words and grows while the model writes', async () => {
    const { provider, calls } = setup();
    const pending = provider.fetch(request('def mean(xs):\n    return '), context);
    calls[0].onText('sum(xs)');
    const list = await pending;
    assert.equal(list.items.length, 1);
    const [item] = list.items;
    assert.equal(item.insertText, 'sum(xs)');
    assert.equal(item.isIncomplete, true);
    assert.ok(item.token);
    const updates = provider.stream(item.token!);
    calls[0].onText('sum(xs) /');
    assert.deepEqual((await updates.next()).value, {
      response: { insertText: 'sum(xs) /', isIncomplete: true }
    });
    calls[0].onText('sum(xs) / len(');
    calls[0].onText('sum(xs) / len(xs)'); // two views before the editor asks: the newest wins
    assert.deepEqual((await updates.next()).value, {
      response: { insertText: 'sum(xs) / len(xs)', isIncomplete: true }
    });
    calls[0].resolve(answer('sum(xs) / len(xs)'));
    assert.deepEqual((await updates.next()).value, { response: { insertText: 'sum(xs) / len(xs)' } });
    assert.equal((await updates.next()).done, true);
  });

  test('a newer keystroke aborts a stream in progress', async () => {
    const { provider, calls } = setup();
    const pending = provider.fetch(request('x = '), context);
    calls[0].onText('compute(');
    const [item] = (await pending).items;
    const updates = provider.stream(item.token!);
    void provider.fetch(request('x = c'), context);
    assert.equal(calls[0].signal.aborted, true);
    const last = await updates.next(); // the abort ends it quietly, with what was shown
    assert.deepEqual(last.value, { response: { insertText: 'compute(' } });
    assert.equal((await updates.next()).done, true);
  });

  test('a stream that fails after its first words reports once and marks the item', async () => {
    const { provider, calls, failures } = setup();
    const pending = provider.fetch(request('y = '), context);
    calls[0].onText('load(');
    const [item] = (await pending).items;
    const updates = provider.stream(item.token!);
    calls[0].reject(apiError(502, 'provider_overloaded'));
    const last = (await updates.next()).value as { response: { insertText: string; error?: object } };
    assert.equal(last.response.insertText, 'load(');
    assert.ok(last.response.error, 'the editor is told the text is cut short');
    assert.equal(failures.length, 1);
    assert.equal(failures[0].kind, 'provider');
  });

  test('a stream nobody asks for is dropped by the next request', async () => {
    const { provider, calls } = setup();
    const pending = provider.fetch(request('a = '), context);
    calls[0].onText('1');
    const [item] = (await pending).items;
    const second = provider.fetch(request('a = 2'), context);
    calls[1].resolve(answer(''));
    await second;
    assert.equal((await provider.stream(item.token!).next()).done, true);
  });
});
