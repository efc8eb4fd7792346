/**
 * The chat WebSocket (`/aiide/api/chat/ws`, docs/protocol.md): one per page, shared by
 * every conversation.
 *
 * - heartbeat: `ping` every `heartbeat_seconds`; no `pong` within twice that → reconnect;
 * - reconnect with exponential backoff and jitter (`Backoff`), for as long as the page lives;
 * - after each reconnect, `resume` every known conversation from the last `seq` seen, and
 *   drop any event at or below it: no event is lost or shown twice;
 * - request/response correlation: every message gets an `id`; replies and errors that
 *   echo it as `reply_to` settle the request that caused them;
 * - a visible connection state (`status`, `statusChanged`).
 *
 * Time, randomness and the socket itself are injected, so all of it is unit-tested.
 */
import { Signal, type ISignal } from '@lumino/signaling';

import { Backoff, DEFAULT_BACKOFF, type IBackoffOptions } from './backoff';
import { parseFrame } from './frames';
import {
  PROTOCOL_VERSION,
  type ClientMessage,
  type ConversationEvent,
  type IErrorMessage,
  type IHello,
  type IPong,
  type IResumed,
  type IRunStarted,
  type IFixStarted
} from './protocol';

/** The part of the browser's WebSocket this client uses. */
export interface ISocketLike {
  onopen: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface IClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const REAL_CLOCK: IClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: handle => clearTimeout(handle as ReturnType<typeof setTimeout>)
};

export type ConnectionState =
  | 'connecting'
  | 'open'
  | 'reconnecting'
  | 'incompatible'
  | 'closed';

export interface IConnectionStatus {
  state: ConnectionState;
  /** Why the socket is not open (null while open). */
  reason: string | null;
  /** When the next attempt is due (epoch ms), while reconnecting. */
  retryAt: number | null;
  /** Failed attempts since the last good connection. */
  attempt: number;
}

/** A conversation event, and whether it is replayed history or live. */
export interface IEventDelivery {
  event: ConversationEvent;
  replay: boolean;
}

/** A frame the client could not use (unknown type, wrong shape). */
export interface IProtocolProblem {
  type: string | null;
  reason: string;
}

/** An `error` from the server, and the message of ours that caused it, if known. */
export interface IServerError {
  error: IErrorMessage;
  request: ClientMessage | null;
}

/** Raised by `send` / `request` when the socket cannot carry the message. */
export class SocketError extends Error {
  constructor(
    readonly code: 'not_connected' | 'connection_lost' | 'timeout' | 'too_large' | 'closed',
    message: string
  ) {
    super(message);
    this.name = 'SocketError';
  }
}

/** An `error` reply to one of our requests. */
export class ServerReplyError extends Error {
  constructor(readonly error: IErrorMessage) {
    super(error.message);
    this.name = 'ServerReplyError';
  }

  get code(): string {
    return this.error.code;
  }
}

type ReplyType = 'run_started' | 'fix_started' | 'pong' | 'resumed';
type Reply = IRunStarted | IFixStarted | IPong | IResumed;

interface IPending {
  type: ReplyType;
  resolve(reply: Reply): void;
  reject(error: Error): void;
  timer: unknown;
}

export interface IChatSocketOptions {
  /** The socket URL; a function so a token refresh is picked up on reconnect. */
  url: () => string;
  createSocket(url: string): ISocketLike;
  clock?: IClock;
  random?: () => number;
  backoff?: IBackoffOptions;
  /** How long a request waits for its reply. */
  requestTimeoutMs?: number;
  /** How long a fresh socket may stay silent before `hello`. */
  helloTimeoutMs?: number;
  /**
   * Asked when a connection fails before `hello`: a sentence saying why (signed out,
   * not allowed, server extension missing, …), or null when it cannot tell.
   */
  diagnose?(): Promise<string | null>;
}

/** How many fire-and-forget messages are kept to explain a late `error` reply. */
const SENT_MEMORY = 200;

export class ChatSocket {
  constructor(options: IChatSocketOptions) {
    this._options = options;
    this._clock = options.clock ?? REAL_CLOCK;
    this._backoff = new Backoff(options.backoff ?? DEFAULT_BACKOFF, options.random);
  }

  get status(): IConnectionStatus {
    return this._status;
  }

  get statusChanged(): ISignal<this, IConnectionStatus> {
    return this._statusChanged;
  }

  /** Conversation events: each `seq` once, in order, across reconnects. */
  get events(): ISignal<this, IEventDelivery> {
    return this._events;
  }

  /** Emitted after every `hello`: re-declare per-connection state (open notebooks). */
  get opened(): ISignal<this, IHello> {
    return this._opened;
  }

  get serverErrors(): ISignal<this, IServerError> {
    return this._serverErrors;
  }

  get problems(): ISignal<this, IProtocolProblem> {
    return this._problems;
  }

  /** The greeting of the current connection (null while not open). */
  get hello(): IHello | null {
    return this._hello;
  }

  get isDisposed(): boolean {
    return this._status.state === 'closed';
  }

  /** The highest `seq` delivered for a conversation (0 when none). */
  lastSeq(conversationId: string): number {
    return this._lastSeq.get(conversationId) ?? 0;
  }

  connect(): void {
    if (this.isDisposed || this._socket || this._status.state === 'incompatible') {
      return;
    }
    this._clearRetry();
    let socket: ISocketLike;
    try {
      socket = this._options.createSocket(this._options.url());
    } catch (error) {
      this._scheduleRetry(error instanceof Error ? error.message : String(error));
      return;
    }
    this._socket = socket;
    this._gotHello = false;
    socket.onmessage = event => this._onFrame(socket, event.data);
    socket.onclose = event => this._onClose(socket, event.code, event.reason);
    socket.onerror = () => undefined; // always followed by onclose
    this._helloTimer = this._clock.setTimeout(() => {
      if (this._socket === socket && !this._gotHello) {
        this._drop(socket, 'the server did not greet the connection');
      }
    }, this._options.helloTimeoutMs ?? 10_000);
  }

  /** Skip the wait: try again now (a "Retry now" button, the browser coming online). */
  reconnectNow(): void {
    if (this._status.state === 'reconnecting' && !this._socket) {
      this.connect();
    }
  }

  /**
   * Follow a conversation: replay its events after `afterSeq` (0: all of it), then
   * receive it live. Also re-sent after every reconnect, from the last `seq` seen.
   */
  watch(conversationId: string, afterSeq = 0): void {
    const known = this._lastSeq.get(conversationId);
    if (known === undefined || known < afterSeq) {
      this._lastSeq.set(conversationId, afterSeq);
    }
    this._watched.add(conversationId);
    if (this._status.state === 'open') {
      this._resume(conversationId);
    }
  }

  /** Stop following a conversation (deleted, or closed in the UI). */
  forget(conversationId: string): void {
    this._watched.delete(conversationId);
    this._lastSeq.delete(conversationId);
    this._replaying.delete(conversationId);
  }

  /** Sends a message; returns its correlation id. */
  send(message: ClientMessage): string {
    const id = message.id ?? this._nextId();
    const frame = { ...message, id };
    const text = JSON.stringify(frame);
    const socket = this._socket;
    if (!socket || this._status.state !== 'open') {
      throw new SocketError('not_connected', 'not connected to the aiide server');
    }
    const limit = this._hello?.max_message_bytes;
    if (limit !== undefined && new TextEncoder().encode(text).length > limit) {
      throw new SocketError(
        'too_large',
        `the message is larger than the server accepts (${limit} bytes)`
      );
    }
    socket.send(text);
    this._sent.set(id, frame);
    if (this._sent.size > SENT_MEMORY) {
      const oldest = this._sent.keys().next().value;
      if (oldest !== undefined) {
        this._sent.delete(oldest);
      }
    }
    return id;
  }

  /** Sends a message and waits for the reply that names it in `reply_to`. */
  request(message: ClientMessage & { type: 'chat' }): Promise<IRunStarted>;
  request(message: ClientMessage & { type: 'fix' }): Promise<IFixStarted>;
  request(message: ClientMessage & { type: 'ping' }): Promise<IPong>;
  request(message: ClientMessage & { type: 'resume' }): Promise<IResumed>;
  request(message: ClientMessage): Promise<Reply> {
    const type = REPLY_TYPES[message.type];
    if (!type) {
      return Promise.reject(new Error(`'${message.type}' has no reply`));
    }
    return new Promise<Reply>((resolve, reject) => {
      let id: string;
      try {
        id = this.send(message);
      } catch (error) {
        reject(error);
        return;
      }
      const timer = this._clock.setTimeout(() => {
        this._pending.delete(id);
        reject(new SocketError('timeout', `no answer to '${message.type}' in time`));
      }, this._options.requestTimeoutMs ?? 15_000);
      this._pending.set(id, { type, resolve, reject, timer });
    });
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._clearRetry();
    this._failPending(new SocketError('closed', 'the chat connection was closed'));
    const socket = this._socket;
    this._detach();
    socket?.close(1000, 'page closed');
    this._setStatus({ state: 'closed', reason: null, retryAt: null, attempt: 0 });
    Signal.clearData(this);
  }

  // -- incoming ------------------------------------------------------------------------

  private _onFrame(socket: ISocketLike, data: unknown): void {
    if (socket !== this._socket) {
      return;
    }
    if (typeof data !== 'string') {
      this._problems.emit({ type: null, reason: 'the server sent a binary frame' });
      return;
    }
    const parsed = parseFrame(data);
    if (parsed.kind === 'invalid') {
      this._problems.emit({ type: parsed.type, reason: parsed.reason });
      return;
    }
    if (parsed.kind === 'event') {
      this._onEvent(parsed.event);
      return;
    }
    const message = parsed.message;
    switch (message.type) {
      case 'hello':
        this._onHello(socket, message);
        break;
      case 'pong':
        this._lastPong = this._clock.now();
        this._settle(message.reply_to, message);
        break;
      case 'resumed':
        this._replaying.delete(message.conversation_id);
        this._settle(message.reply_to, message);
        break;
      case 'error':
        this._onError(message);
        break;
    }
  }

  private _onHello(socket: ISocketLike, hello: IHello): void {
    this._gotHello = true;
    this._clock.clearTimeout(this._helloTimer);
    if (hello.protocol !== PROTOCOL_VERSION) {
      this._detach();
      socket.close(1000, 'incompatible protocol');
      this._setStatus({
        state: 'incompatible',
        reason:
          `the server speaks chat protocol ${hello.protocol}, this page speaks ` +
          `${PROTOCOL_VERSION}: reload the page; if that does not help, update aiide`,
        retryAt: null,
        attempt: 0
      });
      return;
    }
    this._hello = hello;
    this._backoff.reset();
    this._lastPong = this._clock.now();
    this._setStatus({ state: 'open', reason: null, retryAt: null, attempt: 0 });
    this._startHeartbeat(socket, hello.heartbeat_seconds);
    this._opened.emit(hello);
    for (const conversationId of this._watched) {
      this._resume(conversationId);
    }
  }

  private _onEvent(event: ConversationEvent): void {
    const cid = event.conversation_id;
    const last = this._lastSeq.get(cid) ?? 0;
    if (event.seq <= last) {
      return; // already delivered (replay overlapping the live stream)
    }
    this._lastSeq.set(cid, event.seq);
    this._watched.add(cid);
    if (event.type === 'run_started' || event.type === 'fix_started') {
      this._settle(event.reply_to, event);
    }
    this._events.emit({ event, replay: this._replaying.has(cid) });
  }

  private _onError(error: IErrorMessage): void {
    const id = error.reply_to;
    const pending = id ? this._pending.get(id) : undefined;
    if (id && pending) {
      this._pending.delete(id);
      this._clock.clearTimeout(pending.timer);
      pending.reject(new ServerReplyError(error));
    }
    const request = (id && this._sent.get(id)) || null;
    if (request?.type === 'resume') {
      this._replaying.delete(request.conversation_id);
      if (error.code === 'unknown_conversation') {
        this.forget(request.conversation_id);
      }
    }
    if (!pending) {
      this._serverErrors.emit({ error, request });
    }
  }

  private _settle(replyTo: string | null | undefined, reply: Reply): void {
    const pending = replyTo ? this._pending.get(replyTo) : undefined;
    if (!replyTo || !pending || pending.type !== reply.type) {
      return;
    }
    this._pending.delete(replyTo);
    this._clock.clearTimeout(pending.timer);
    pending.resolve(reply);
  }

  // -- connection lifecycle -------------------------------------------------------------

  private _resume(conversationId: string): void {
    this._replaying.add(conversationId);
    try {
      this.send({
        type: 'resume',
        conversation_id: conversationId,
        after_seq: this.lastSeq(conversationId)
      });
    } catch {
      this._replaying.delete(conversationId); // the socket dropped meanwhile: next hello
    }
  }

  private _startHeartbeat(socket: ISocketLike, seconds: number): void {
    if (!(seconds > 0)) {
      return;
    }
    const periodMs = seconds * 1000;
    const beat = (): void => {
      if (this._socket !== socket) {
        return;
      }
      if (this._clock.now() - this._lastPong > 2 * periodMs) {
        this._drop(socket, `no answer to the heartbeat for ${2 * seconds} s`);
        return;
      }
      try {
        this.send({ type: 'ping' });
      } catch {
        return;
      }
      this._heartbeat = this._clock.setTimeout(beat, periodMs);
    };
    this._heartbeat = this._clock.setTimeout(beat, periodMs);
  }

  private _onClose(socket: ISocketLike, code: number, reason: string): void {
    if (socket !== this._socket) {
      return;
    }
    const before = this._gotHello;
    this._detach();
    const why = reason || (code === 1009 ? 'a message was too large' : 'the connection was lost');
    this._scheduleRetry(why);
    if (!before && this._options.diagnose) {
      const attempt = this._status.attempt;
      void this._options.diagnose().then(
        found => {
          if (found && this._status.state === 'reconnecting' && this._status.attempt === attempt) {
            this._setStatus({ ...this._status, reason: found });
          }
        },
        () => undefined
      );
    }
  }

  /** Gives up on a socket that looks alive but is not (no hello, no pong). */
  private _drop(socket: ISocketLike, reason: string): void {
    this._detach();
    socket.close(4000, reason.slice(0, 120));
    this._scheduleRetry(reason);
  }

  private _detach(): void {
    const socket = this._socket;
    if (socket) {
      socket.onopen = socket.onclose = socket.onmessage = socket.onerror = null;
    }
    this._socket = null;
    this._hello = null;
    this._clock.clearTimeout(this._heartbeat);
    this._clock.clearTimeout(this._helloTimer);
    this._replaying.clear();
    this._failPending(new SocketError('connection_lost', 'the connection to the server was lost'));
  }

  private _scheduleRetry(reason: string): void {
    if (this.isDisposed) {
      return;
    }
    const delay = this._backoff.next();
    const retryAt = this._clock.now() + delay;
    this._retry = this._clock.setTimeout(() => {
      this._retry = null;
      this.connect();
    }, delay);
    this._setStatus({ state: 'reconnecting', reason, retryAt, attempt: this._backoff.attempts });
  }

  private _clearRetry(): void {
    if (this._retry !== null) {
      this._clock.clearTimeout(this._retry);
      this._retry = null;
    }
  }

  private _failPending(error: Error): void {
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const p of pending) {
      this._clock.clearTimeout(p.timer);
      p.reject(error);
    }
  }

  private _setStatus(status: IConnectionStatus): void {
    this._status = status;
    this._statusChanged.emit(status);
  }

  private _nextId(): string {
    this._counter += 1;
    return `m${this._counter}`;
  }

  private readonly _options: IChatSocketOptions;
  private readonly _clock: IClock;
  private readonly _backoff: Backoff;
  private _socket: ISocketLike | null = null;
  private _hello: IHello | null = null;
  private _gotHello = false;
  private _status: IConnectionStatus = {
    state: 'connecting',
    reason: null,
    retryAt: null,
    attempt: 0
  };
  private _counter = 0;
  private _lastPong = 0;
  private _heartbeat: unknown = null;
  private _helloTimer: unknown = null;
  private _retry: unknown = null;
  private readonly _lastSeq = new Map<string, number>();
  private readonly _watched = new Set<string>();
  private readonly _replaying = new Set<string>();
  private readonly _pending = new Map<string, IPending>();
  private readonly _sent = new Map<string, ClientMessage>();
  private readonly _statusChanged = new Signal<this, IConnectionStatus>(this);
  private readonly _events = new Signal<this, IEventDelivery>(this);
  private readonly _opened = new Signal<this, IHello>(this);
  private readonly _serverErrors = new Signal<this, IServerError>(this);
  private readonly _problems = new Signal<this, IProtocolProblem>(this);
}

const REPLY_TYPES: Partial<Record<ClientMessage['type'], ReplyType>> = {
  chat: 'run_started',
  fix: 'fix_started',
  ping: 'pong',
  resume: 'resumed'
};
