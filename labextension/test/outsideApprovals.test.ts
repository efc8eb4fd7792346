/**
 * An outside agent's paused call (docs/mcp.md) in the chat: the same card as the agent's
 * own calls, answered over REST as the person (no token), found again when the page
 * (re)connects, and resolved when someone answers it elsewhere.
 */
import './dom';

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ServerConnection } from '@jupyterlab/services';

import { ChatSocket } from '../src/api/chatSocket';
import {
  answerOutsideApproval,
  parseOutsideApprovals,
  type IOutsideApproval,
  type OutsideDecision
} from '../src/api/outsideApprovals';
import type { ConversationEvent } from '../src/api/protocol';
import { CallCard, type CallBlock } from '../src/chat/callCard';
import { ChatSession, type IConversationApi } from '../src/chat/session';
import { Transcript } from '../src/chat/transcript';
import { FakeClock, FakeSocket, event } from './harness';

const CID = 'mcp-0123456789abcdef0123';
const RUN = 'mcp_run1';
const CALL = 'ap_call1';
const ARGS = { path: 'nb.ipynb', source: "print('hi')" };
const PATCH = {
  path: 'nb.ipynb',
  ops: [{ op: 'insert', after_id: null, cell: { id: 'ai-call1', cell_type: 'code', source: "print('hi')" } }]
};
const USAGE = { input_tokens: 0, output_tokens: 0, model_calls: 0, tool_calls: 1, steps: 1 };

/** The events the server sends for one paused call (aiide_server_ext/mcp/sidebar.py). */
function outsideCall(first: number): Record<string, unknown>[] {
  const model = 'outside agent (apikey:k1)';
  const call = { call_id: CALL, name: 'insert_cell', arguments: ARGS, risk: 'medium' };
  return [
    event('run_started', first, { reply_to: null, task: 'agent', model, provider: 'mcp' }, CID, RUN),
    event('tool_call', first + 1, { ...call, decision: 'approve' }, CID, RUN),
    event('approval_required', first + 2, { ...call, expires_at: 2e9, patch: PATCH }, CID, RUN)
  ];
}

function answered(first: number, decision: 'approve' | 'reject', ok: boolean): Record<string, unknown>[] {
  const result = ok
    ? { ok: true, content: 'inserted', error: null, outputs: null }
    : { ok: false, content: 'rejected', error: { code: 'rejected', message: 'a user rejected it' }, outputs: null };
  return [
    event('approval_resolved', first, { call_id: CALL, decision, by: 'carol (session)', reason: null }, CID, RUN),
    event('tool_result', first + 1, { call_id: CALL, name: 'insert_cell', ...result }, CID, RUN),
    event('run_finished', first + 2, { status: 'completed', usage: USAGE, text: '' }, CID, RUN)
  ];
}

const asEvent = (raw: Record<string, unknown>): ConversationEvent => raw as unknown as ConversationEvent;

const NO_CONVERSATIONS: IConversationApi = {
  list: async () => [],
  get: async id => ({ id, title: '', created: 0, updated: 0, last_seq: 0, active_run: null, turns: [], runs: [] }),
  remove: async () => undefined,
  search: async () => [],
  rename: async () => {
    throw new Error('not here');
  },
  exportFile: async () => {
    throw new Error('not here');
  }
};

interface IWorld {
  session: ChatSession;
  socket: FakeSocket;
  answers: [string, OutsideDecision][];
  asked: string[];
  pending: IOutsideApproval[];
}

function world(pending: IOutsideApproval[] = []): IWorld {
  const sockets: FakeSocket[] = [];
  const client = new ChatSocket({
    url: () => 'ws://lab.test/aiide/api/chat/ws',
    createSocket: url => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    clock: new FakeClock()
  });
  const answers: [string, OutsideDecision][] = [];
  const w: IWorld = {
    session: new ChatSession(client, NO_CONVERSATIONS, {
      list: async () => w.pending,
      answer: async (id, answer) => {
        answers.push([id, answer]);
      }
    }),
    socket: null as unknown as FakeSocket,
    answers,
    asked: [],
    pending
  };
  w.session.outsideAsked.connect((_, id) => w.asked.push(id));
  client.connect();
  w.socket = sockets[0];
  w.socket.hello();
  return w;
}

const tick = (): Promise<void> => new Promise(resolve => setTimeout(resolve, 0));

describe('an outside agent in the transcript', () => {
  test('its paused call is a card with the diff, answered as is, with no usage line', () => {
    const t = new Transcript(CID);
    for (const raw of outsideCall(1)) {
      t.apply(asEvent(raw));
    }
    assert.deepEqual(t.blocks.map(b => b.kind), ['notice', 'call']);
    const notice = t.blocks[0];
    assert.ok(notice.kind === 'notice' && notice.message.startsWith('An outside agent (apikey:k1) asks'));
    assert.equal(t.lastModel, null, 'an outside agent is not a model of this chat');
    const card = t.blocks[1];
    assert.ok(card.kind === 'call');
    assert.deepEqual(card.approval?.patch, PATCH);
    assert.equal(card.approval?.editable, false);
    assert.equal(t.isOutside(RUN), true);
    assert.equal(t.outsideWaiting, true);
    assert.equal(t.activeRun, null, 'the chat box stays free: the card is answered, not stopped');
    for (const raw of answered(4, 'approve', true)) {
      t.apply(asEvent(raw));
    }
    assert.deepEqual(t.blocks.map(b => b.kind), ['notice', 'call'], 'no token usage for no model');
    const done = t.blocks[1];
    assert.ok(done.kind === 'call' && done.approval?.resolution?.by === 'carol (session)');
    assert.equal(done.kind === 'call' && done.result?.ok, true);
    assert.equal(t.outsideWaiting, false);
  });

  test('its card offers Approve and Reject, never Edit; answered elsewhere, it says by whom', () => {
    const t = new Transcript(CID);
    for (const raw of outsideCall(1)) {
      t.apply(asEvent(raw));
    }
    const handlers = {
      approve: () => true,
      reject: () => true,
      confirm: () => undefined,
      refuse: () => undefined,
      undo: () => undefined,
      switchToSandbox: async () => undefined
    };
    const card = new CallCard(handlers);
    card.update(t.blocks[1] as CallBlock, true);
    const labels = [...card.node.querySelectorAll('button')].map(b => b.textContent);
    assert.deepEqual(labels, ['Approve', 'Reject']);
    assert.match(card.node.querySelector('.aiide-Diff-add')?.textContent ?? '', /print\('hi'\)/);
    t.apply(asEvent(answered(4, 'approve', true)[0]));
    card.update(t.blocks[1] as CallBlock, false);
    assert.equal(card.node.querySelectorAll('button').length, 0);
    assert.equal(card.node.querySelector('.aiide-Call-status')?.textContent, 'Approved by carol (session)');
    card.dispose();
  });
});

describe('an outside agent in the session', () => {
  test('a live paused call asks for attention and is listed while another conversation shows', async () => {
    const w = world();
    for (const raw of outsideCall(1)) {
      w.socket.receive(raw);
    }
    assert.deepEqual(w.asked, [CID]);
    assert.deepEqual(w.session.outsideWaiting, [CID]);
    await w.session.open(CID);
    assert.deepEqual(w.session.outsideWaiting, [], 'on screen: the card itself is there');
    w.session.startNew();
    assert.deepEqual(w.session.outsideWaiting, [CID]);
    for (const raw of answered(4, 'approve', true)) {
      w.socket.receive(raw); // approved in another tab, or by another key
    }
    assert.deepEqual(w.session.outsideWaiting, []);
  });

  test('approve and reject go over REST as the person, never as an `approve` frame', async () => {
    const w = world();
    for (const raw of outsideCall(1)) {
      w.socket.receive(raw);
    }
    const t = w.session.transcript(CID)!;
    assert.ok(w.session.decide(t, RUN, CALL, { decision: 'reject', reason: 'not this cell' }));
    assert.ok(w.session.decide(t, RUN, CALL, { decision: 'approve', arguments: { source: 'x' } }));
    await tick();
    assert.deepEqual(w.answers, [
      [CALL, { decision: 'reject', reason: 'not this cell' }],
      [CALL, { decision: 'approve' }]
    ]);
    assert.deepEqual(w.socket.sentOf('approve'), []);
  });

  test('a refused answer is shown in the conversation', async () => {
    const w = world();
    for (const raw of outsideCall(1)) {
      w.socket.receive(raw);
    }
    const t = w.session.transcript(CID)!;
    const session = new ChatSession(w.session.socket, NO_CONVERSATIONS, {
      list: async () => [],
      answer: async () => {
        throw new Error('nope');
      }
    });
    session.decide(t, RUN, CALL, { decision: 'approve' });
    await tick();
    const last = t.blocks[t.blocks.length - 1];
    assert.ok(last.kind === 'error' && last.message === 'nope');
  });

  test('calls already waiting when the page connects are followed and shown', async () => {
    const w = world([{ id: CALL, tool: 'insert_cell', expiresAt: 2e9, conversationId: CID, runId: RUN }]);
    await tick();
    assert.deepEqual(w.socket.sentOf('resume').map(m => [m.conversation_id, m.after_seq]), [[CID, 0]]);
    assert.deepEqual(w.asked, [CID]);
    const resume = w.socket.sentOf('resume')[0];
    for (const raw of outsideCall(1)) {
      w.socket.receive(raw); // the replay
    }
    w.socket.receive({ type: 'resumed', run_id: null, seq: null, reply_to: resume.id, conversation_id: CID, after_seq: 0, replayed: 3, last_seq: 3 });
    assert.deepEqual(w.session.outsideWaiting, [CID]);
  });
});

describe('the approvals API', () => {
  test('an answer is sent with the session cookie and XSRF token, without the page token', async () => {
    const seen: Request[] = [];
    const fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
      seen.push(input instanceof Request ? input : new Request(String(input), init));
      return new Response(null, { status: 204 });
    };
    document.cookie = '_xsrf=xsrf-of-the-page';
    const settings = ServerConnection.makeSettings({
      baseUrl: 'http://lab.test/',
      wsUrl: 'ws://lab.test/',
      token: 'jupyters-own-token',
      fetch,
      Request,
      Headers
    } as Partial<ServerConnection.ISettings>);
    await answerOutsideApproval(CALL, { decision: 'reject', reason: 'no' }, settings);
    const [request] = seen;
    assert.equal(new URL(request.url).pathname, `/aiide/api/mcp/approvals/${CALL}`);
    assert.equal(request.method, 'POST');
    assert.equal(request.headers.get('Authorization'), null);
    assert.equal(request.headers.get('X-XSRFToken'), 'xsrf-of-the-page');
    assert.deepEqual(await request.json(), { decision: 'reject', reason: 'no' });
  });

  test('the list names each call and its conversation; a malformed list is refused', () => {
    const body = {
      pending: [
        { id: CALL, tool: 'insert_cell', arguments: ARGS, expires_at: 2e9, conversation_id: CID, run_id: RUN }
      ]
    };
    assert.deepEqual(parseOutsideApprovals(body), [
      { id: CALL, tool: 'insert_cell', expiresAt: 2e9, conversationId: CID, runId: RUN }
    ]);
    assert.throws(() => parseOutsideApprovals({ pending: [{ id: CALL }] }), /MCP approvals/);
  });
});
