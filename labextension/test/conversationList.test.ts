/** The conversation list: server-side search (debounced, stale answers dropped), export. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { document, typeInto } from './dom';
import './assetHooks';

import { Signal } from '@lumino/signaling';

import {
  dispositionName,
  parseConversationMatches,
  type ExportFormat,
  type IConversationMatch
} from '../src/api/conversations';
import type { IConversationSummary } from '../src/api/protocol';
import { ConversationList } from '../src/chat/conversationList';
import type { ChatSession } from '../src/chat/session';
import { TitleStore } from '../src/chat/titles';

function conv(id: string, title: string, snippet: string | null = null): IConversationMatch {
  return { id, title, created: 1, updated: 1, last_seq: 0, active_run: null, snippet };
}

interface IPending {
  query: string;
  resolve: (matches: IConversationMatch[]) => void;
}

/** The parts of a session the list uses; searches wait until the test answers them. */
class FakeSession {
  conversations: IConversationSummary[] = [conv('a', 'Loading a CSV'), conv('b', 'Plots')];
  readonly conversationsChanged = new Signal<this, void>(this);
  readonly listFailure = null;
  readonly current = { id: null };
  readonly searches: IPending[] = [];
  readonly exports: [string, ExportFormat][] = [];

  search(query: string): Promise<IConversationMatch[]> {
    return new Promise(resolve => this.searches.push({ query, resolve }));
  }

  async exportFile(id: string, format: ExportFormat) {
    this.exports.push([id, format]);
    return { name: 'Loading a CSV.ipynb', type: 'application/x-ipynb+json', text: '{}' };
  }
}

function setUp(): { list: ConversationList; session: FakeSession; saved: string[][] } {
  const session = new FakeSession();
  const saved: string[][] = [];
  const list = new ConversationList(
    session as unknown as ChatSession,
    new TitleStore(null),
    () => undefined,
    { searchDelayMs: 5, save: (name, type, text) => saved.push([name, type, text]) }
  );
  document.body.append(list.node);
  list.render();
  return { list, session, saved };
}

const titles = (list: ConversationList): string[] =>
  [...list.node.querySelectorAll('.aiide-Conversations-title')].map(e => e.textContent ?? '');
const input = (list: ConversationList): HTMLInputElement =>
  list.node.querySelector('input[type=search]') as HTMLInputElement;
const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms));

describe('conversation list search', () => {
  test('typing asks the server once, for the last text, after a pause', async () => {
    const { list, session } = setUp();
    typeInto(input(list), 'p');
    typeInto(input(list), 'pa');
    typeInto(input(list), 'pandas');
    assert.equal(session.searches.length, 0);
    await sleep(30);
    assert.deepEqual(
      session.searches.map(s => s.query),
      ['pandas']
    );
    session.searches[0].resolve([conv('a', 'Loading a CSV', '…import pandas as pd…')]);
    await sleep(0);
    assert.deepEqual(titles(list), ['Loading a CSV']);
    assert.equal(
      list.node.querySelector('.aiide-Conversations-snippet')?.textContent,
      '…import pandas as pd…'
    );
    list.dispose();
  });

  test('an answer to an older query is dropped', async () => {
    const { list, session } = setUp();
    typeInto(input(list), 'plot');
    await sleep(30);
    typeInto(input(list), 'csv');
    await sleep(30);
    assert.deepEqual(
      session.searches.map(s => s.query),
      ['plot', 'csv']
    );
    session.searches[1].resolve([conv('a', 'Loading a CSV')]);
    await sleep(0);
    session.searches[0].resolve([conv('b', 'Plots')]); // late, stale
    await sleep(0);
    assert.deepEqual(titles(list), ['Loading a CSV']);
    list.dispose();
  });

  test('clearing the box shows every conversation again without asking', async () => {
    const { list, session } = setUp();
    typeInto(input(list), 'zzz');
    await sleep(30);
    session.searches[0].resolve([]);
    await sleep(0);
    assert.equal(list.node.querySelector('[role=status]')?.textContent, 'No conversation matches.');
    typeInto(input(list), '');
    assert.deepEqual(titles(list), ['Loading a CSV', 'Plots']);
    assert.equal(session.searches.length, 1);
    list.dispose();
  });
});

describe('conversation export', () => {
  test('"Export as notebook" saves the server file under its name', async () => {
    const { list, session, saved } = setUp();
    const button = list.node.querySelector('.aiide-Conversations-exportNotebook') as HTMLElement;
    button.click();
    await sleep(0);
    assert.deepEqual(session.exports, [['a', 'ipynb']]);
    assert.deepEqual(saved, [['Loading a CSV.ipynb', 'application/x-ipynb+json', '{}']]);
    list.dispose();
  });

  test('the file name comes from Content-Disposition, filename* first', () => {
    const header = `attachment; filename="Donnes t.md"; filename*=UTF-8''Donn%C3%A9es%20%C3%A9t%C3%A9.md`;
    assert.equal(dispositionName(header, 'x.md'), 'Données été.md');
    assert.equal(dispositionName('attachment; filename="a.md"', 'x.md'), 'a.md');
    assert.equal(dispositionName(null, 'x.md'), 'x.md');
  });

  test('search answers are validated, snippet included', () => {
    const body = { conversations: [conv('a', 'T', 'words')] };
    assert.deepEqual(parseConversationMatches(body), body.conversations);
    assert.throws(
      () => parseConversationMatches({ conversations: [{ ...conv('a', 'T'), snippet: 3 }] }),
      /snippet/
    );
  });
});
