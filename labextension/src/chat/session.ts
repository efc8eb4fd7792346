/**
 * The chat as the panel sees it: the conversation list, one transcript per
 * conversation, and the actions (ask, approve, reject, stop, open, delete), on top of
 * the shared `ChatSocket` and the REST routes. Events are routed to transcripts by
 * `conversation_id`; a new conversation's transcript is found by the `reply_to` of its
 * `run_started`.
 */
import { Signal, type ISignal } from '@lumino/signaling';

import {
  ServerReplyError,
  SocketError,
  type ChatSocket,
  type IEventDelivery,
  type IProtocolProblem,
  type IServerError
} from '../api/chatSocket';
import { describeFailure, explainCode, type IFailure } from '../api/failure';
import type {
  IChatContext,
  IConversationDetail,
  IConversationSummary,
  Task
} from '../api/protocol';
import type { ExportFormat, IConversationMatch, IExportedFile } from '../api/conversations';
import type { IOutsideApproval, OutsideDecision } from '../api/outsideApprovals';
import { fixQuestion, Transcript } from './transcript';

/** The REST calls the session needs (injected: the plugin passes the real ones). */
export interface IConversationApi {
  list(): Promise<IConversationSummary[]>;
  get(id: string): Promise<IConversationDetail>;
  remove(id: string): Promise<void>;
  /** Server-side search of titles and text. */
  search(query: string): Promise<IConversationMatch[]>;
  /** Stores a new title on the server. */
  rename(id: string, title: string): Promise<IConversationSummary>;
  /** The conversation as a file (`markdown` or `ipynb`). */
  exportFile(id: string, format: ExportFormat): Promise<IExportedFile>;
}

/**
 * The REST calls for outside agents' paused calls (docs/mcp.md; injected). Their cards
 * arrive over the socket; these find the ones waiting when the page connects, and answer.
 */
export interface IOutsideApprovalApi {
  list(): Promise<IOutsideApproval[]>;
  answer(id: string, answer: OutsideDecision): Promise<void>;
}

export interface IAskOptions {
  task: Task;
  model: string | null;
  context: IChatContext;
}

export class ChatSession {
  constructor(socket: ChatSocket, api: IConversationApi, outside: IOutsideApprovalApi | null = null) {
    this.socket = socket;
    this._api = api;
    this._outside = outside;
    socket.events.connect(this._onEvent, this);
    socket.serverErrors.connect(this._onServerError, this);
    socket.problems.connect(this._onProblem, this);
    socket.opened.connect(this._onOpened, this);
  }

  readonly socket: ChatSocket;

  get conversations(): readonly IConversationSummary[] {
    return this._conversations;
  }

  get conversationsChanged(): ISignal<this, void> {
    return this._conversationsChanged;
  }

  /** The transcript on screen (a draft until its first run starts). */
  get current(): Transcript {
    return this._current;
  }

  get currentChanged(): ISignal<this, Transcript> {
    return this._currentChanged;
  }

  /** Why the conversation list could not be loaded (null when it could). */
  get listFailure(): IFailure | null {
    return this._listFailure;
  }

  /**
   * A call of an outside agent started waiting in this conversation (pushed live, or
   * found waiting when the page connected): the user should be shown it.
   */
  get outsideAsked(): ISignal<this, string> {
    return this._outsideAsked;
  }

  /** Conversations (other than the one on screen) where an outside agent's call waits. */
  get outsideWaiting(): string[] {
    const found: string[] = [];
    for (const [id, transcript] of this._transcripts) {
      if (transcript !== this._current && transcript.outsideWaiting) {
        found.push(id);
      }
    }
    return found;
  }

  /** Emitted when `outsideWaiting` may have changed. */
  get outsideChanged(): ISignal<this, void> {
    return this._outsideChanged;
  }

  transcript(conversationId: string): Transcript | null {
    return this._transcripts.get(conversationId) ?? null;
  }

  async refresh(): Promise<void> {
    try {
      this._conversations = await this._api.list();
      this._listFailure = null;
    } catch (error) {
      this._listFailure = describeFailure(error);
    }
    this._conversationsChanged.emit();
  }

  /** Starts a new conversation (its id comes with the first run). */
  startNew(): void {
    if (this._current.id === null && this._current.blocks.length === 0) {
      return;
    }
    this._setCurrent(new Transcript());
  }

  /** Shows a conversation: its questions from REST, its events replayed over the socket. */
  async open(conversationId: string): Promise<void> {
    let transcript = this._transcripts.get(conversationId);
    if (transcript) {
      this._setCurrent(transcript);
      return;
    }
    transcript = new Transcript(conversationId);
    this._transcripts.set(conversationId, transcript);
    this._setCurrent(transcript);
    try {
      const detail = await this._api.get(conversationId);
      const questions = new Map<string, string>();
      for (const turn of detail.turns) {
        if (turn.role === 'user' && turn.run_id && !questions.has(turn.run_id)) {
          questions.set(turn.run_id, turn.text);
        }
      }
      transcript.setQuestions(questions);
    } catch (error) {
      transcript.addLocalError('history', describeFailure(error).message);
      return;
    }
    this.socket.watch(conversationId, 0);
  }

  /** Sends a question on the current transcript. Never throws: failures show inline. */
  async ask(text: string, options: IAskOptions): Promise<void> {
    const transcript = this._current;
    const key = `q${++this._questions}`;
    transcript.ask(key, text);
    this._drafts.set(key, transcript);
    try {
      await this.socket.request({
        type: 'chat',
        id: key,
        conversation_id: transcript.id,
        text,
        task: options.task,
        ...(options.model ? { model: options.model } : {}),
        context: options.context
      });
      void this.refresh();
    } catch (error) {
      transcript.failQuestion(key, this._explain(error).message);
    } finally {
      this._drafts.delete(key);
    }
  }

  /** Starts a fix loop on the current transcript. Never throws: failures show inline. */
  async fix(
    path: string,
    cellId: string | null,
    cellNumber: number | null,
    model: string | null
  ): Promise<void> {
    const transcript = this._current;
    const key = `q${++this._questions}`;
    transcript.ask(key, fixQuestion(path, cellNumber));
    this._drafts.set(key, transcript);
    try {
      await this.socket.request({
        type: 'fix',
        id: key,
        conversation_id: transcript.id,
        path,
        ...(cellId ? { cell_id: cellId } : {}),
        ...(model ? { model } : {})
      });
      void this.refresh();
    } catch (error) {
      transcript.failQuestion(key, this._explain(error).message);
    } finally {
      this._drafts.delete(key);
    }
  }

  /** Answers an approval: approve (with edited arguments) or reject (with a reason). */
  decide(
    transcript: Transcript,
    runId: string,
    callId: string,
    decision: { decision: 'approve'; arguments?: Record<string, unknown> } | {
      decision: 'reject';
      reason?: string;
    }
  ): string | null {
    if (transcript.isOutside(runId)) {
      return this._answerOutside(transcript, callId, decision);
    }
    return this._send(transcript, {
      type: 'approve',
      conversation_id: transcript.id ?? '',
      run_id: runId,
      call_id: callId,
      ...decision
    });
  }

  stop(transcript: Transcript): string | null {
    const runId = transcript.activeFix ?? transcript.activeRun?.id;
    if (!runId || !transcript.id) {
      return null;
    }
    return this._send(transcript, {
      type: 'cancel',
      conversation_id: transcript.id,
      run_id: runId
    });
  }

  /** The conversations this user's titles or text match, from the server. */
  search(query: string): Promise<IConversationMatch[]> {
    return this._api.search(query);
  }

  exportFile(conversationId: string, format: ExportFormat): Promise<IExportedFile> {
    return this._api.exportFile(conversationId, format);
  }

  /** Renames on the server, then shows the stored title in the list. */
  async rename(conversationId: string, title: string): Promise<IFailure | null> {
    try {
      const renamed = await this._api.rename(conversationId, title);
      this._conversations = this._conversations.map(c =>
        c.id === renamed.id ? { ...c, title: renamed.title } : c
      );
    } catch (error) {
      return describeFailure(error);
    }
    this._conversationsChanged.emit();
    return null;
  }

  async remove(conversationId: string): Promise<IFailure | null> {
    try {
      await this._api.remove(conversationId);
    } catch (error) {
      return describeFailure(error);
    }
    this.socket.forget(conversationId);
    this._transcripts.delete(conversationId);
    if (this._current.id === conversationId) {
      this._setCurrent(new Transcript());
    }
    await this.refresh();
    return null;
  }

  dispose(): void {
    Signal.clearData(this);
  }

  /** An outside agent's call is answered over REST, as the person (never edited). */
  private _answerOutside(
    transcript: Transcript,
    callId: string,
    decision: { decision: 'approve' } | { decision: 'reject'; reason?: string }
  ): string | null {
    const outside = this._outside;
    if (!outside) {
      transcript.addLocalError('send', 'This page cannot answer outside agents.');
      return null;
    }
    const answer: OutsideDecision =
      decision.decision === 'approve'
        ? { decision: 'approve' }
        : { decision: 'reject', ...(decision.reason ? { reason: decision.reason } : {}) };
    outside.answer(callId, answer).catch((error: unknown) => {
      const failure = describeFailure(error);
      transcript.addLocalError(failure.code ?? 'send', failure.message);
    });
    return `outside:${callId}`;
  }

  // -- incoming -----------------------------------------------------------------------

  /** Each (re)connection: follow the conversations where an outside agent's call waits. */
  private _onOpened(): void {
    const outside = this._outside;
    if (!outside) {
      return;
    }
    outside.list().then(
      pending => {
        for (const id of new Set(pending.flatMap(p => (p.conversationId ? [p.conversationId] : [])))) {
          if (!this._transcripts.has(id)) {
            this._transcripts.set(id, new Transcript(id));
            this.socket.watch(id, 0);
          }
          this._outsideAsked.emit(id);
        }
      },
      (error: unknown) => console.warn('aiide: could not list the calls waiting for approval', error)
    );
  }

  private _onEvent(_: ChatSocket, { event, replay }: IEventDelivery): void {
    const cid = event.conversation_id;
    let transcript = this._transcripts.get(cid);
    if (!transcript) {
      const draft =
        (event.type === 'run_started' || event.type === 'fix_started') && event.reply_to
          ? this._drafts.get(event.reply_to)
          : undefined;
      transcript = draft ?? new Transcript(cid);
      this._transcripts.set(cid, transcript);
    }
    transcript.apply(event, replay);
    if (event.type === 'run_finished' && !replay) {
      void this.refresh();
    }
    if (transcript.isOutside(event.run_id)) {
      if (event.type === 'approval_required' && !replay) {
        void this.refresh(); // its conversation may be new to the list
        this._outsideAsked.emit(cid);
      }
      this._outsideChanged.emit();
    }
  }

  /** Shown by its code: the view puts it in words (`explainCode`). */
  private _onServerError(_: ChatSocket, { error, request }: IServerError): void {
    const cid = error.conversation_id ?? (request && 'conversation_id' in request ? request.conversation_id : null);
    const transcript = (cid && this._transcripts.get(cid)) || this._current;
    transcript.addLocalError(error.code, error.message);
  }

  private _onProblem(_: ChatSocket, problem: IProtocolProblem): void {
    this._current.addLocalError(
      'protocol',
      `The server sent something this version of aiide does not understand ` +
        `(${problem.reason}); it was ignored. If this keeps happening, reload the page ` +
        'or update aiide.'
    );
  }

  private _send(
    transcript: Transcript,
    message: Parameters<ChatSocket['send']>[0]
  ): string | null {
    try {
      return this.socket.send(message);
    } catch (error) {
      transcript.addLocalError('send', this._explain(error).message);
      return null;
    }
  }

  private _explain(error: unknown): IFailure {
    if (error instanceof ServerReplyError) {
      return explainCode(error.code, error.error.message);
    }
    if (error instanceof SocketError) {
      const tail =
        error.code === 'not_connected' || error.code === 'connection_lost'
          ? ' It was not sent: wait for the connection to come back, then send it again.'
          : '';
      return { kind: 'unreachable', message: `${error.message}.${tail}`, code: error.code };
    }
    return describeFailure(error);
  }

  private _setCurrent(transcript: Transcript): void {
    this._current = transcript;
    this._currentChanged.emit(transcript);
    this._outsideChanged.emit();
  }

  private readonly _api: IConversationApi;
  private readonly _outside: IOutsideApprovalApi | null;
  private readonly _outsideAsked = new Signal<this, string>(this);
  private readonly _outsideChanged = new Signal<this, void>(this);
  private _conversations: IConversationSummary[] = [];
  private _listFailure: IFailure | null = null;
  private _current = new Transcript();
  private readonly _transcripts = new Map<string, Transcript>();
  private readonly _drafts = new Map<string, Transcript>();
  private _questions = 0;
  private readonly _conversationsChanged = new Signal<this, void>(this);
  private readonly _currentChanged = new Signal<this, Transcript>(this);
}
