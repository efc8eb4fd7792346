import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { Contents } from '@jupyterlab/services';

import type { IKnowledgeHit } from '../src/api/knowledge';
import type { ActiveContext } from '../src/chat/activeContext';
import { MentionSource } from '../src/chat/mentionSource';

// MentionSource waits for typing to pause with window.setTimeout.
(globalThis as { window?: unknown }).window ??= globalThis;

const contents = {
  get: async () => ({ content: [] })
} as unknown as Contents.IManager;
const active = { notebook: null } as unknown as ActiveContext;

const hit: IKnowledgeHit = {
  citation: {
    path: 'analysis/sensors.ipynb',
    cell_id: 'cell-4',
    cell_index: 4,
    line_start: null,
    line_end: null,
    title: 'Cleaning',
    label: 'analysis/sensors.ipynb, cell 5 (id cell-4)'
  },
  kind: 'code_cell',
  score: 0.5,
  text: 'def drop_outliers(frame): ...'
};

describe('MentionSource knowledge search', () => {
  test('a failed or empty search is asked again; hits are kept for a while', async () => {
    const answers: (IKnowledgeHit[] | Error)[] = [new Error('503'), [], [hit]];
    let calls = 0;
    const source = new MentionSource(contents, active, async () => {
      const answer = answers[calls++];
      if (answer instanceof Error) {
        throw answer;
      }
      return answer;
    });
    assert.deepEqual(await source.candidates('outliers'), []);
    assert.deepEqual(await source.candidates('outliers'), []);
    const found = await source.candidates('outliers');
    assert.equal(found.length, 1);
    assert.equal(found[0].label, 'sensors.ipynb · cell 5');
    assert.equal((await source.candidates('outliers')).length, 1);
    assert.equal(calls, 3, 'the hits were cached, the failure and the empty answer were not');
  });

  test('the last word typed is searched even when an earlier listing answers later', async () => {
    // Two keystrokes: the first one's folder listing is slow (the server is busy), the
    // second one's answers at once. The search must follow the typing, not the listings.
    const listings: ((model: unknown) => void)[] = [];
    const slow = {
      get: () => new Promise(resolve => listings.push(resolve))
    } as unknown as Contents.IManager;
    const asked: string[] = [];
    const source = new MentionSource(slow, active, async q => {
      asked.push(q);
      return [hit];
    });
    const first = source.candidates('outlier');
    const last = source.candidates('outliers');
    assert.equal(listings.length, 2);
    listings[1]({ content: [] });
    await new Promise(resolve => setTimeout(resolve, 0));
    listings[0]({ content: [] });
    assert.deepEqual(await first, [], 'typed over: not searched');
    const found = await last;
    assert.deepEqual(
      found.map(c => c.label),
      ['sensors.ipynb · cell 5']
    );
    assert.deepEqual(asked, ['outliers']);
  });

  test('words shorter than three characters are not searched', async () => {
    let calls = 0;
    const source = new MentionSource(contents, active, async () => {
      calls++;
      return [hit];
    });
    assert.deepEqual(await source.candidates('ou'), []);
    assert.equal(calls, 0);
  });
});
