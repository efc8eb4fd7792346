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
    assert.equal(found[0].label, 'analysis/sensors.ipynb · cell 5');
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
      ['analysis/sensors.ipynb · cell 5']
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

describe('MentionSource files and folders', () => {
  const tree: Record<string, { name: string; path: string; type: string }[]> = {
    '': [
      { name: 'data', path: 'data', type: 'directory' },
      { name: 'report.ipynb', path: 'report.ipynb', type: 'notebook' },
      { name: 'scratch.py', path: 'scratch.py', type: 'file' },
      { name: '.env', path: '.env', type: 'file' }
    ],
    data: [
      { name: 'scores.csv', path: 'data/scores.csv', type: 'file' },
      { name: 'raw', path: 'data/raw', type: 'directory' }
    ]
  };
  const listing = {
    get: async (dir: string) => {
      if (!(dir in tree)) {
        throw new Error('404');
      }
      return { content: tree[dir] };
    }
  } as unknown as Contents.IManager;
  const cells = Array.from({ length: 12 }, (_, i) => ({
    model: { id: `c${i}`, sharedModel: { getSource: () => `x${i} = ${i}` } }
  }));
  const withNotebook = {
    notebook: { context: { path: 'report.ipynb' }, content: { widgets: cells } }
  } as unknown as ActiveContext;

  test('a bare @ offers files and folders beside a few cells', async () => {
    const found = await new MentionSource(listing, withNotebook).candidates('');
    const tokens = found.map(c => c.token);
    assert.ok(tokens.includes('@data/'), tokens.join(' '));
    assert.ok(tokens.includes('@scratch.py'));
    assert.ok(!tokens.includes('@.env'));
    assert.equal(found.filter(c => c.mention.kind === 'cell').length, 4);
    const folder = found.find(c => c.token === '@data/');
    assert.deepEqual(folder?.mention, { kind: 'folder', path: 'data' });
  });

  test('a path being typed lists its folder: @data/sc finds data/scores.csv', async () => {
    const found = await new MentionSource(listing, active).candidates('data/sc');
    assert.deepEqual(
      found.map(c => [c.token, c.mention.kind]),
      [['@data/scores.csv', 'file']]
    );
    const all = await new MentionSource(listing, active).candidates('data/');
    assert.deepEqual(all.map(c => c.token).sort(), ['@data/raw/', '@data/scores.csv']);
  });

  test('a path being typed is not searched in the index', async () => {
    let searched = 0;
    const source = new MentionSource(listing, active, async () => {
      searched++;
      return [hit];
    });
    assert.deepEqual((await source.candidates('data/sc')).map(c => c.token), ['@data/scores.csv']);
    assert.equal(searched, 0);
  });

  test('an index hit is labelled with its folder', async () => {
    const source = new MentionSource(contents, active, async () => [hit]);
    const found = await source.candidates('outliers');
    assert.equal(found[0].label, 'analysis/sensors.ipynb · cell 5');
  });
});
