/**
 * The client against the contract: docs/protocol.schema.json (with ajv) and every
 * example of docs/protocol.md.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import Ajv2020 from 'ajv/dist/2020';

import { ChatSocket } from '../src/api/chatSocket';
import { parseFrame } from '../src/api/frames';
import { ChatSession } from '../src/chat/session';
import { FakeClock, FakeSocket, event } from './harness';

const DOCS = join(__dirname, '..', '..', 'docs');
const schema = JSON.parse(readFileSync(join(DOCS, 'protocol.schema.json'), 'utf8'));
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addSchema(schema, 'protocol');
const validator = (def: string) => ajv.getSchema(`protocol#/$defs/${def}`)!;
const isServerMessage = validator('ServerMessage');
const isClientMessage = validator('ClientMessage');
const isPatchOp = validator('PatchOp');

const CLIENT_TYPES = new Set([
  'chat', 'approve', 'cancel', 'resume', 'ping', 'notebook_open', 'notebook_close', 'notebook_result',
  'fix'
]);

/** Every JSON value in the ```json blocks of protocol.md (a block may hold several). */
function documentedExamples(): Record<string, unknown>[] {
  const text = readFileSync(join(DOCS, 'protocol.md'), 'utf8');
  const out: Record<string, unknown>[] = [];
  for (const block of text.matchAll(/```json\n([\s\S]*?)```/g)) {
    const body = block[1];
    let depth = 0;
    let start = -1;
    let inString = false;
    for (let i = 0; i < body.length; i++) {
      const c = body[i];
      if (inString) {
        if (c === '\\') {
          i++;
        } else if (c === '"') {
          inString = false;
        }
      } else if (c === '"') {
        inString = true;
      } else if (c === '{') {
        if (depth++ === 0) {
          start = i;
        }
      } else if (c === '}' && --depth === 0) {
        out.push(JSON.parse(body.slice(start, i + 1)));
      }
    }
  }
  return out;
}

const examples = documentedExamples();
const serverExamples = examples.filter(e => typeof e.type === 'string' && !CLIENT_TYPES.has(e.type as string));
const clientExamples = examples.filter(e => CLIENT_TYPES.has(e.type as string));

describe('docs/protocol.md examples', () => {
  test('there are examples of every server message type', () => {
    const types = new Set(serverExamples.map(e => e.type));
    for (const type of [
      'hello', 'pong', 'resumed', 'run_started', 'context', 'token', 'notice', 'tool_call',
      'approval_required', 'approval_resolved', 'notebook_patch', 'tool_result',
      'run_finished', 'error', 'fix_started', 'fix_attempt', 'fix_finished'
    ]) {
      assert.ok(types.has(type), `no example of ${type}`);
    }
  });

  test('every server example is valid by the schema and accepted by the client', () => {
    for (const example of serverExamples) {
      assert.ok(isServerMessage(example), `schema rejects ${JSON.stringify(example)}`);
      const parsed = parseFrame(JSON.stringify(example));
      assert.notEqual(parsed.kind, 'invalid', `client rejects ${JSON.stringify(example)}: ${JSON.stringify(parsed)}`);
      assert.equal(parsed.kind === 'event', example.seq !== null, `event/control: ${example.type}`);
    }
  });

  test('every client example is valid by the schema', () => {
    for (const example of clientExamples) {
      assert.ok(isClientMessage(example), JSON.stringify(isClientMessage.errors));
    }
  });

  test('every patch op example is valid by the schema', () => {
    const ops = examples.filter(e => typeof e.op === 'string');
    assert.ok(ops.length >= 4);
    for (const op of ops) {
      assert.ok(isPatchOp(op), JSON.stringify(op));
    }
  });
});

/**
 * Where the client is deliberately more tolerant than the schema: another protocol
 * version is accepted so the socket can say it is incompatible, and a notice of a code
 * added later is still shown (by its message).
 */
const LENIENT: Record<string, (value: unknown) => boolean> = {
  'hello.protocol': v => Number.isInteger(v),
  'notice.code': v => typeof v === 'string'
};

describe('the client rejects what the schema rejects', () => {
  const wrongValues: unknown[] = [{}, 'x', 7, null, [], true];

  test('a missing or mistyped documented field makes a frame invalid', () => {
    let checked = 0;
    for (const example of serverExamples) {
      for (const key of Object.keys(example)) {
        if (key === 'type') {
          continue;
        }
        const variants: Record<string, unknown>[] = [];
        const missing = { ...example };
        delete missing[key];
        variants.push(missing);
        for (const value of wrongValues) {
          variants.push({ ...example, [key]: value });
        }
        for (const variant of variants) {
          if (isServerMessage(variant)) {
            continue; // still valid (an optional field, or a value of an allowed type)
          }
          if (LENIENT[`${variant.type}.${key}`]?.(variant[key])) {
            continue;
          }
          const parsed = parseFrame(JSON.stringify(variant));
          assert.equal(
            parsed.kind,
            'invalid',
            `schema rejects but client accepts ${JSON.stringify(variant)}`
          );
          checked++;
        }
      }
    }
    assert.ok(checked > 200, `only ${checked} variants checked`);
  });

  test('an unknown message type is reported by name', () => {
    const parsed = parseFrame(JSON.stringify({ type: 'run_paused', run_id: 'r', seq: 3 }));
    assert.deepEqual(parsed.kind, 'invalid');
    assert.match(parsed.kind === 'invalid' ? parsed.reason : '', /run_paused/);
  });
});

describe('what the client sends is valid by the schema', () => {
  test('chat, approve, reject, cancel, resume and ping frames', async () => {
    const clock = new FakeClock();
    let socket: FakeSocket | null = null;
    const client = new ChatSocket({
      url: () => 'ws://x',
      createSocket: url => (socket = new FakeSocket(url)),
      clock
    });
    const api = {
      list: async () => [],
      get: async () => ({
        id: 'cv_1', title: 't', created: 1, updated: 1, last_seq: 0, active_run: null,
        turns: [], runs: []
      }),
      remove: async () => undefined,
      search: async () => [],
      rename: async () => ({
        id: 'cv_1', title: 't', created: 1, updated: 1, last_seq: 0, active_run: null
      }),
      exportFile: async () => ({ name: 'c.md', type: 'text/markdown', text: '' })
    };
    const session = new ChatSession(client, api);
    client.connect();
    const s = socket as unknown as FakeSocket;
    s.hello();
    const asked = session.ask('Plot the price column', {
      task: 'agent',
      model: 'claude-sonnet',
      context: {
        notebook: 'analysis.ipynb',
        cell_id: 'c3',
        selection: 'df.price',
        mentions: [
          { kind: 'file', path: 'data/prices.csv' },
          { kind: 'cell', path: 'analysis.ipynb', cell_id: 'c1' }
        ]
      }
    });
    const chat = s.sentOf('chat')[0];
    s.receive(event('run_started', 1, { reply_to: chat.id, task: 'agent', model: 'claude-sonnet', provider: 'anthropic' }));
    await asked;
    s.receive(event('approval_required', 2, {
      call_id: 'toolu_1', name: 'insert_cell', arguments: { source: '1' }, risk: 'medium',
      expires_at: 1, patch: null
    }));
    const transcript = session.current;
    session.decide(transcript, 'run_1', 'toolu_1', {
      decision: 'approve',
      arguments: { source: '2', after_id: null }
    });
    session.decide(transcript, 'run_1', 'toolu_1', { decision: 'approve' });
    session.decide(transcript, 'run_1', 'toolu_1', { decision: 'reject', reason: 'use seaborn instead' });
    session.decide(transcript, 'run_1', 'toolu_1', { decision: 'reject' });
    session.stop(transcript);
    await session.open('cv_2');
    client.send({ type: 'ping' });
    client.send({ type: 'notebook_open', path: 'analysis.ipynb' });
    client.send({
      type: 'notebook_result', conversation_id: 'cv_1', run_id: 'run_1', request_id: 'rq_1',
      status: 'ok', outputs: [{ output_type: 'stream', name: 'stdout', text: '42\n' }]
    });
    const types = new Set(s.sent.map(m => m.type));
    for (const type of ['chat', 'approve', 'cancel', 'resume', 'ping', 'notebook_open', 'notebook_result']) {
      assert.ok(types.has(type), `nothing of type ${type} was sent`);
    }
    for (const frame of s.sent) {
      assert.ok(isClientMessage(frame), `${JSON.stringify(frame)}: ${JSON.stringify(isClientMessage.errors)}`);
    }
  });
});
