import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';

import {
  ChatSocket,
  ServerReplyError,
  SocketError,
  type IConnectionStatus,
  type IEventDelivery
} from '../src/api/chatSocket';
import { FakeClock, FakeSocket, event, token } from './harness';

interface IWorld {
  clock: FakeClock;
  sockets: FakeSocket[];
  client: ChatSocket;
  delivered: IEventDelivery[];
  statuses: IConnectionStatus[];
  last(): FakeSocket;
}

function world(random = 0.5, diagnose?: () => Promise<string | null>): IWorld {
  const clock = new FakeClock();
  const sockets: FakeSocket[] = [];
  const client = new ChatSocket({
    url: () => 'ws://test/aiide/api/chat/ws',
    createSocket: url => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    clock,
    random: () => random,
    backoff: { initialMs: 1000, maxMs: 8000, factor: 2 },
    diagnose
  });
  const delivered: IEventDelivery[] = [];
  const statuses: IConnectionStatus[] = [];
  client.events.connect((_, d) => delivered.push(d));
  client.statusChanged.connect((_, s) => statuses.push(s));
  return { clock, sockets, client, delivered, statuses, last: () => sockets[sockets.length - 1] };
}

const texts = (w: IWorld): string[] =>
  w.delivered.map(d => String((d.event as { text?: string }).text ?? d.event.type));

describe('ChatSocket connection state', () => {
  test('is open only after the server says hello', () => {
    const w = world();
    w.client.connect();
    assert.equal(w.client.status.state, 'connecting');
    w.last().hello();
    assert.equal(w.client.status.state, 'open');
  });

  test('refuses a server that speaks another protocol version, without retrying', () => {
    const w = world();
    w.client.connect();
    w.last().hello(30, 2);
    assert.equal(w.client.status.state, 'incompatible');
    assert.match(w.client.status.reason ?? '', /protocol 2/);
    w.clock.advance(60_000);
    assert.equal(w.sockets.length, 1);
  });

  test('a socket that never says hello is dropped and retried', () => {
    const w = world();
    w.client.connect();
    w.clock.advance(10_000);
    assert.equal(w.client.status.state, 'reconnecting');
    assert.match(w.client.status.reason ?? '', /did not greet/);
    w.clock.advance(1000);
    assert.equal(w.sockets.length, 2);
  });

  test('dispose closes the socket and stops reconnecting', () => {
    const w = world();
    w.client.connect();
    w.last().hello();
    w.client.dispose();
    assert.equal(w.client.status.state, 'closed');
    assert.deepEqual(w.last().closed?.code, 1000);
    w.clock.advance(120_000);
    assert.equal(w.sockets.length, 1);
  });
});

describe('ChatSocket reconnect with backoff and jitter', () => {
  test('delays grow exponentially up to the cap, within [ceiling/2, ceiling)', () => {
    for (const random of [0, 0.999]) {
      const w = world(random);
      w.client.connect();
      const delays: number[] = [];
      for (let i = 0; i < 6; i++) {
        w.last().drop();
        const status = w.client.status;
        delays.push((status.retryAt ?? 0) - w.clock.now());
        w.clock.advance(status.retryAt! - w.clock.now());
      }
      const ceilings = [1000, 2000, 4000, 8000, 8000, 8000];
      delays.forEach((d, i) => {
        assert.ok(d >= ceilings[i] / 2 && d <= ceilings[i], `delay ${i}: ${d}`);
      });
      assert.equal(w.sockets.length, 7);
    }
  });

  test('a good connection resets the backoff', () => {
    const w = world(0.5);
    w.client.connect();
    w.last().drop();
    w.clock.advance(1000);
    w.last().drop();
    assert.equal(w.client.status.attempt, 2);
    w.clock.advance(4000);
    w.last().hello();
    w.last().drop();
    assert.equal(w.client.status.attempt, 1);
    assert.equal(w.client.status.retryAt! - w.clock.now(), 750);
  });

  test('reconnectNow skips the wait', () => {
    const w = world();
    w.client.connect();
    w.last().drop();
    w.client.reconnectNow();
    assert.equal(w.sockets.length, 2);
  });

  test('diagnose explains a connection that fails before hello', async () => {
    const w = world(0.5, async () => 'You are signed out (401): reload the page to sign in again.');
    w.client.connect();
    w.last().drop();
    await new Promise(resolve => setImmediate(resolve));
    assert.match(w.client.status.reason ?? '', /signed out/);
  });
});

describe('ChatSocket heartbeat', () => {
  test('pings every heartbeat and reconnects when no pong comes within twice that', () => {
    const w = world();
    w.client.connect();
    w.last().hello(10);
    w.clock.advance(10_000);
    const pings = w.last().sentOf('ping');
    assert.equal(pings.length, 1);
    w.last().receive({ type: 'pong', reply_to: pings[0].id, run_id: null, seq: null, ts: 1 });
    w.clock.advance(10_000);
    w.clock.advance(10_000);
    assert.equal(w.client.status.state, 'open');
    w.clock.advance(10_000); // 30 s since the last pong
    assert.equal(w.client.status.state, 'reconnecting');
    assert.match(w.client.status.reason ?? '', /heartbeat/);
    assert.equal(w.sockets[0].closed?.code, 4000);
  });

  test('a heartbeat of 0 sends no pings', () => {
    const w = world();
    w.client.connect();
    w.last().hello(0);
    w.clock.advance(600_000);
    assert.equal(w.last().sentOf('ping').length, 0);
    assert.equal(w.client.status.state, 'open');
  });
});

describe('ChatSocket resume: no event lost or shown twice', () => {
  let w: IWorld;
  beforeEach(() => {
    w = world();
    w.client.connect();
    w.last().hello();
  });

  test('events are delivered in order and duplicates dropped', () => {
    const s = w.last();
    s.receive(event('run_started', 1, { task: 'chat', model: 'm', provider: 'p', reply_to: null }));
    s.receive(token(2, 'a'));
    s.receive(token(2, 'a'));
    s.receive(token(3, 'b'));
    s.receive(token(1, 'old'));
    assert.deepEqual(texts(w), ['run_started', 'a', 'b']);
    assert.equal(w.client.lastSeq('cv_1'), 3);
  });

  test('after a reconnect it resumes from the last seq and skips the overlap', () => {
    const s1 = w.last();
    s1.receive(event('run_started', 1, { task: 'chat', model: 'm', provider: 'p' }));
    s1.receive(token(2, 'Hel'));
    s1.receive(token(3, 'lo'));
    s1.drop();
    w.clock.advance(1000);
    const s2 = w.last();
    assert.notEqual(s1, s2);
    s2.hello();
    const resume = s2.sentOf('resume');
    assert.equal(resume.length, 1);
    assert.equal(resume[0].conversation_id, 'cv_1');
    assert.equal(resume[0].after_seq, 3);
    // A replay that overlaps what was seen, then live events.
    s2.receive(token(3, 'lo'));
    s2.receive(token(4, ' wor'));
    s2.receive({
      type: 'resumed',
      reply_to: resume[0].id,
      conversation_id: 'cv_1',
      run_id: null,
      seq: null,
      after_seq: 3,
      replayed: 1,
      last_seq: 4
    });
    s2.receive(token(5, 'ld'));
    assert.deepEqual(texts(w), ['run_started', 'Hel', 'lo', ' wor', 'ld']);
    assert.deepEqual(
      w.delivered.map(d => d.replay),
      [false, false, false, true, false]
    );
  });

  test('a gap after a crash is accepted (seq never goes back)', () => {
    const s = w.last();
    s.receive(token(1, 'a'));
    s.receive(token(7, 'b'));
    assert.deepEqual(texts(w), ['a', 'b']);
  });

  test('watch replays a conversation from the start and marks it replaying', () => {
    w.client.watch('cv_9', 0);
    const resume = w.last().sentOf('resume').find(m => m.conversation_id === 'cv_9')!;
    assert.equal(resume.after_seq, 0);
    w.last().receive(token(1, 'x', 'cv_9'));
    assert.equal(w.delivered[0].replay, true, 'before resumed: history');
  });

  test('unknown_conversation on resume forgets the conversation', () => {
    w.client.watch('cv_gone', 5);
    const resume = w.last().sentOf('resume').find(m => m.conversation_id === 'cv_gone')!;
    const errors: string[] = [];
    w.client.serverErrors.connect((_, e) => errors.push(e.error.code));
    w.last().receive({
      type: 'error',
      conversation_id: 'cv_gone',
      run_id: null,
      seq: null,
      ts: 1,
      code: 'unknown_conversation',
      message: 'no conversation',
      reply_to: resume.id
    });
    assert.deepEqual(errors, ['unknown_conversation']);
    assert.equal(w.client.lastSeq('cv_gone'), 0);
    w.last().drop();
    w.clock.advance(1000);
    w.last().hello();
    assert.equal(w.last().sentOf('resume').length, 0);
  });

  test('events of several conversations interleave without mixing their seqs', () => {
    const s = w.last();
    s.receive(token(1, 'a1', 'cv_a'));
    s.receive(token(1, 'b1', 'cv_b'));
    s.receive(token(2, 'a2', 'cv_a'));
    s.receive(token(1, 'a1-again', 'cv_a'));
    assert.deepEqual(texts(w), ['a1', 'b1', 'a2']);
  });
});

describe('ChatSocket correlation ids', () => {
  let w: IWorld;
  beforeEach(() => {
    w = world();
    w.client.connect();
    w.last().hello();
  });

  test('every message gets a distinct id of at most 64 characters', () => {
    const ids = [
      w.client.send({ type: 'ping' }),
      w.client.send({ type: 'notebook_open', path: 'a.ipynb' }),
      w.client.send({ type: 'cancel', conversation_id: 'c', run_id: 'r' })
    ];
    assert.equal(new Set(ids).size, 3);
    assert.ok(ids.every(id => id.length > 0 && id.length <= 64));
    assert.deepEqual(
      w.last().sent.map(m => m.id),
      ids
    );
  });

  test('a chat request resolves with the run_started that echoes its id', async () => {
    const pending = w.client.request({ type: 'chat', text: 'hi', conversation_id: null });
    const id = w.last().sentOf('chat')[0].id;
    w.last().receive(
      event('run_started', 1, { reply_to: 'someone-else', task: 'chat', model: 'x', provider: 'p' }, 'cv_other')
    );
    w.last().receive(event('run_started', 1, { reply_to: id, task: 'agent', model: 'm', provider: 'p' }));
    const started = await pending;
    assert.equal(started.conversation_id, 'cv_1');
    assert.equal(started.model, 'm');
  });

  test('an error that echoes the id rejects that request with its code', async () => {
    const pending = w.client.request({ type: 'chat', text: 'hi' });
    const id = w.last().sentOf('chat')[0].id;
    w.last().receive({
      type: 'error',
      conversation_id: null,
      run_id: null,
      seq: null,
      ts: 1,
      code: 'quota_exceeded',
      message: 'your daily tokens quota of 1000 is used up',
      reply_to: id
    });
    await assert.rejects(pending, (e: unknown) => e instanceof ServerReplyError && e.code === 'quota_exceeded');
  });

  test('an error for a fire-and-forget message names the message', () => {
    const seen: string[] = [];
    w.client.serverErrors.connect((_, e) => seen.push(`${e.error.code}:${e.request?.type}`));
    const id = w.client.send({
      type: 'approve',
      conversation_id: 'cv_1',
      run_id: 'run_1',
      call_id: 'toolu_1',
      decision: 'approve'
    });
    w.last().receive({
      type: 'error',
      conversation_id: 'cv_1',
      run_id: 'run_1',
      seq: null,
      ts: 1,
      code: 'already_decided',
      message: 'decided',
      reply_to: id
    });
    assert.deepEqual(seen, ['already_decided:approve']);
  });

  test('pending requests fail when the connection drops, and time out otherwise', async () => {
    const lost = w.client.request({ type: 'chat', text: 'a' });
    w.last().drop();
    await assert.rejects(lost, (e: unknown) => e instanceof SocketError && e.code === 'connection_lost');
    w.clock.advance(1000);
    w.last().hello();
    const slow = w.client.request({ type: 'ping' });
    w.clock.advance(15_000);
    await assert.rejects(slow, (e: unknown) => e instanceof SocketError && e.code === 'timeout');
  });

  test('sending while disconnected throws not_connected', () => {
    w.last().drop();
    assert.throws(() => w.client.send({ type: 'ping' }), { code: 'not_connected' });
  });

  test('a message over max_message_bytes is refused before sending', () => {
    assert.throws(
      () => w.client.send({ type: 'chat', text: 'x'.repeat(300_000) }),
      { code: 'too_large' }
    );
    assert.equal(w.last().sentOf('chat').length, 0);
  });
});

describe('ChatSocket bad frames', () => {
  test('unknown types and malformed frames are reported, not thrown, and the stream goes on', () => {
    const w = world();
    const problems: string[] = [];
    w.client.problems.connect((_, p) => problems.push(p.reason));
    w.client.connect();
    w.last().hello();
    w.last().receive('not json');
    w.last().receive({ type: 'telepathy', run_id: null, seq: null });
    w.last().receive(event('token', 1, {}));
    w.last().onmessage?.({ data: new ArrayBuffer(4) });
    w.last().receive(token(2, 'still here'));
    assert.equal(problems.length, 4);
    assert.match(problems[1], /unknown message type 'telepathy'/);
    assert.match(problems[2], /'text'/);
    assert.deepEqual(texts(w), ['still here']);
  });
});
