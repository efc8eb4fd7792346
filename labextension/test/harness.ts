/**
 * Test doubles for the chat socket: a scriptable WebSocket and a manual clock. No
 * network, no timers: each test decides when time passes and what the server says.
 */
import type { IClock, ISocketLike } from '../src/api/chatSocket';

export class FakeSocket implements ISocketLike {
  constructor(readonly url: string) {}

  onopen: ((event: unknown) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;

  readonly sent: Record<string, unknown>[] = [];
  closed: { code?: number; reason?: string } | null = null;

  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }

  close(code?: number, reason?: string): void {
    this.closed = { code, reason };
  }

  /** The server sends a frame (an object is JSON-encoded). */
  receive(frame: unknown): void {
    this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
  }

  hello(heartbeat = 30, protocol = 1): void {
    this.receive({
      type: 'hello',
      protocol,
      run_id: null,
      seq: null,
      max_message_bytes: 262144,
      heartbeat_seconds: heartbeat
    });
  }

  /** The connection drops (server restart, network). */
  drop(code = 1006, reason = ''): void {
    this.onclose?.({ code, reason });
  }

  sentOf(type: string): Record<string, unknown>[] {
    return this.sent.filter(m => m.type === type);
  }
}

interface ITimer {
  at: number;
  callback: () => void;
  id: number;
}

export class FakeClock implements IClock {
  time = 1_000_000;

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const id = ++this._next;
    this._timers.push({ at: this.time + ms, callback, id });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this._timers = this._timers.filter(t => t.id !== handle);
  }

  /** Moves time forward, running due timers in order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      this._timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this._timers[0];
      if (!next || next.at > end) {
        break;
      }
      this._timers.shift();
      this.time = next.at;
      next.callback();
    }
    this.time = end;
  }

  /** Delays of the timers now pending, from now. */
  pending(): number[] {
    return this._timers.map(t => t.at - this.time);
  }

  private _timers: ITimer[] = [];
  private _next = 0;
}

let ts = 1732575600;

/** A conversation event with the required base fields. */
export function event(
  type: string,
  seq: number,
  fields: Record<string, unknown> = {},
  conversation = 'cv_1',
  run = 'run_1'
): Record<string, unknown> {
  return { type, conversation_id: conversation, run_id: run, seq, ts: ts++, ...fields };
}

export function token(seq: number, text: string, conversation = 'cv_1'): Record<string, unknown> {
  return event('token', seq, { text }, conversation);
}
