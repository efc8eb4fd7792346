/**
 * The conversation on screen survives a reload (issue 19, finding 1): a real ChatSession
 * over the fake socket, and a state database kept across two "page loads".
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ChatSocket } from '../src/api/chatSocket';
import type { IConversationSummary } from '../src/api/protocol';
import { OPEN_CONVERSATION_KEY, OpenConversation } from '../src/chat/openConversation';
import { ChatSession } from '../src/chat/session';
import { FakeClock, FakeSocket, event } from './harness';

class MemoryState {
  readonly values = new Map<string, unknown>();
  async fetch(key: string): Promise<any> {
    return this.values.get(key);
  }
  async save(key: string, value: any): Promise<any> {
    this.values.set(key, value);
  }
  async remove(key: string): Promise<void> {
    this.values.delete(key);
  }
}

const summary = (id: string): IConversationSummary => ({
  id, title: id, created: 1, updated: 1, last_seq: 3, active_run: null
});

/** One page load: a session whose server knows `known` conversations. */
function page(known: string[]) {
  let socket: FakeSocket | null = null;
  const client = new ChatSocket({
    url: () => 'ws://x',
    createSocket: url => (socket = new FakeSocket(url)),
    clock: new FakeClock()
  });
  const opened: string[] = [];
  const session = new ChatSession(client, {
    list: async () => known.map(summary),
    get: async id => {
      opened.push(id);
      return { ...summary(id), turns: [], runs: [] };
    },
    remove: async () => undefined,
    search: async () => [],
    rename: async id => summary(id),
    exportFile: async () => ({ name: 'c.md', type: 'text/markdown', text: '' })
  });
  client.connect();
  (socket as unknown as FakeSocket).hello();
  return { session, socket: socket as unknown as FakeSocket, opened };
}

describe('the open conversation after a reload', () => {
  test('a conversation started before the reload is open again, replayed from the server', async () => {
    const state = new MemoryState();
    const first = page([]);
    new OpenConversation(first.session, state);
    const asked = first.session.ask('Summarise the data', { task: 'chat', model: null, context: {} });
    const chat = first.socket.sentOf('chat')[0];
    first.socket.receive(event('run_started', 1, { reply_to: chat.id, task: 'chat', model: 'm', provider: 'p' }));
    await asked;
    assert.equal(state.values.get(OPEN_CONVERSATION_KEY), 'cv_1'); // remembered with its id

    const second = page(['cv_1']); // F5 while it still answers
    const memory = new OpenConversation(second.session, state);
    assert.equal(await memory.restore(), true);
    assert.equal(second.session.current.id, 'cv_1');
    assert.deepEqual(second.opened, ['cv_1']);
    // Its events are asked for from the start: a run still going streams into view.
    const resume = second.socket.sentOf('resume').find(f => f.conversation_id === 'cv_1');
    assert.ok(resume, JSON.stringify(second.socket.sent));
  });

  test('after "New conversation" a reload shows a new one', async () => {
    const state = new MemoryState();
    const first = page(['cv_1']);
    const memory = new OpenConversation(first.session, state);
    await first.session.open('cv_1');
    assert.equal(state.values.get(OPEN_CONVERSATION_KEY), 'cv_1');
    first.session.startNew();
    assert.equal(state.values.has(OPEN_CONVERSATION_KEY), false);
    const second = page(['cv_1']);
    assert.equal(await new OpenConversation(second.session, state).restore(), false);
    assert.equal(second.session.current.id, null);
    void memory;
  });

  test('a conversation deleted meanwhile is forgotten, not shown as an error', async () => {
    const state = new MemoryState();
    state.values.set(OPEN_CONVERSATION_KEY, 'cv_gone');
    const load = page(['cv_1']);
    assert.equal(await new OpenConversation(load.session, state).restore(), false);
    assert.equal(load.session.current.id, null);
    assert.deepEqual(load.opened, []);
    assert.equal(state.values.has(OPEN_CONVERSATION_KEY), false);
  });

  test('what the user opened before the restore finished wins', async () => {
    const state = new MemoryState();
    state.values.set(OPEN_CONVERSATION_KEY, 'cv_1');
    const load = page(['cv_1', 'cv_2']);
    const memory = new OpenConversation(load.session, state);
    const restoring = memory.restore();
    await load.session.open('cv_2');
    assert.equal(await restoring, false);
    assert.equal(load.session.current.id, 'cv_2');
    assert.equal(state.values.get(OPEN_CONVERSATION_KEY), 'cv_2');
  });
});
