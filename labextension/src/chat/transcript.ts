/**
 * One conversation as the user sees it, folded from protocol events: questions,
 * streamed answers, tool calls with their approval / notebook request / result,
 * notices, errors, and each run's state and usage.
 *
 * Pure (no DOM, no JupyterLab), so the folding is unit-tested; the view listens to
 * `changed` and redraws only the block that changed.
 */
import { Signal, type ISignal } from '@lumino/signaling';

import type {
  ConversationEvent,
  ICitation,
  IContextItem,
  IFixAttempt,
  IFixPatchCell,
  IPatch,
  IUsage,
  Risk,
  RunStatus,
  Task
} from '../api/protocol';
import type { IConflictedCell } from '../notebook/patch';

export type RequestState =
  | 'pending'
  | 'confirm'
  | 'applied'
  | 'ok'
  | 'error'
  | 'conflict'
  | 'rejected'
  | 'past';

/** A notebook request of the server (`notebook_patch` / `notebook_execute`) and its fate. */
export interface INotebookRequest {
  requestId: string;
  kind: 'patch' | 'execute';
  path: string;
  patch: IPatch | null;
  cellId: string | null;
  state: RequestState;
  reason: string | null;
  /** Whether the applied patch can still be undone in one step. */
  undoable: boolean;
  /**
   * Whether the open notebook still holds the applied patch (false once the notebook's
   * own undo, or the user, took it back).
   */
  held: boolean;
  /** A conflict on a changed cell: what the notebook holds now and what was meant. */
  conflict?: IConflictedCell | null;
  /** Applied by the user over a conflict ("Apply anyway"), not as the assistant asked. */
  forced?: boolean;
}

/**
 * `run_started.provider` of a run that is one call of an outside agent (an MCP client
 * of aiide's MCP server, docs/mcp.md): its approval is answered over REST, as is, and
 * it has no model, so no usage line.
 */
export const OUTSIDE_AGENT = 'mcp';

export interface IApproval {
  expiresAt: number;
  patch: IPatch | null;
  /** The code would run outside the sandbox (the card says so). */
  outsideSandbox?: boolean;
  /** False when the arguments cannot be changed at approval (an outside agent's call). */
  editable?: boolean;
  resolution: {
    decision: 'approve' | 'reject' | 'expired';
    by: string | null;
    reason: string | null;
    /** The approver changed the arguments: the call's `arguments` are theirs. */
    edited: boolean;
  } | null;
}

export interface ICallResult {
  ok: boolean;
  content: string;
  error: { code: string; message: string } | null;
  outputs: Record<string, unknown>[] | null;
  /** Sources of the passages in `content` (search_knowledge). */
  citations: ICitation[];
}

export type Block =
  | { kind: 'question'; key: string; runId: string | null; text: string; failed: string | null }
  | {
      kind: 'answer';
      key: string;
      runId: string;
      text: string;
      streaming: boolean;
      /** Every citation the run was given so far: the labels the text quotes are links. */
      citations: readonly ICitation[];
    }
  | {
      kind: 'context';
      key: string;
      runId: string;
      tokens: number;
      budget: number;
      items: IContextItem[];
    }
  | { kind: 'notice'; key: string; runId: string | null; code: string; message: string }
  | {
      kind: 'call';
      key: string;
      runId: string;
      callId: string;
      name: string;
      arguments: Record<string, unknown> | null;
      risk: Risk;
      decision: 'auto' | 'approve' | 'deny';
      approval: IApproval | null;
      request: INotebookRequest | null;
      result: ICallResult | null;
    }
  | { kind: 'error'; key: string; runId: string | null; code: string; message: string }
  | {
      /** What something done in the browser came to (a `/learn`): not in the server's history. */
      kind: 'report';
      key: string;
      runId: string | null;
      tone: 'info' | 'error';
      text: string;
      /** The files it concerns, each with why (files `/learn` left out or could not read). */
      items: readonly IReportItem[];
    }
  | { kind: 'finished'; key: string; runId: string; status: RunStatus; usage: IUsage }
  | {
      /** One attempt of a fix, compactly: the error → the change → the result. */
      kind: 'fixStep';
      key: string;
      /** The fix's id. */
      runId: string;
      path: string;
      number: number;
      error: IFixAttempt['error'];
      patch: readonly IFixPatchCell[];
      result: string;
      detail: string;
    }
  | {
      /** How a fix ended, and its one Undo for every attempt's change. */
      kind: 'fixEnd';
      key: string;
      runId: string;
      path: string;
      status: 'verified' | 'not_verified';
      reason: string;
      message: string;
      attempts: number;
      /** The attempts' runs: their applied patches are what Undo takes back. */
      runIds: readonly string[];
      /** The cells the attempts re-ran: Undo runs them again, so the kernel matches. */
      reran: readonly string[];
      /** none: nothing was changed; available; done; failed (see `undoNote`). */
      undo: 'none' | 'available' | 'done' | 'failed';
      undoNote: string | null;
    };

/** A fix loop seen in this conversation. */
interface IFix {
  path: string;
  cellId: string | null;
  runIds: string[];
  /** Whether any attempt changed the notebook. */
  changed: boolean;
  /** The cells its attempts re-ran, each once: what Undo runs again. */
  reran: string[];
}

/** The question a fix stands for in the conversation. */
export function fixQuestion(path: string, cellNumber: number | null = null): string {
  return cellNumber === null
    ? `Fix the error in ${path} and check the fix`
    : `Fix the error in cell ${cellNumber} of ${path} and check the fix`;
}

export interface IReportItem {
  path: string;
  reason: string;
}

type CallBlock = Extract<Block, { kind: 'call' }>;

function newCall(
  key: string,
  runId: string,
  callId: string,
  name: string,
  args: Record<string, unknown> | null,
  risk: Risk,
  rest: Partial<Pick<CallBlock, 'decision' | 'approval' | 'request'>>
): CallBlock {
  return {
    kind: 'call',
    key,
    runId,
    callId,
    name,
    arguments: args,
    risk,
    decision: rest.decision ?? (rest.approval ? 'approve' : 'auto'),
    approval: rest.approval ?? null,
    request: rest.request ?? null,
    result: null
  };
}

export type RunState = 'running' | 'awaiting_approval' | RunStatus;

export interface IRun {
  id: string;
  task: Task;
  model: string;
  provider: string;
  state: RunState;
  usage: IUsage | null;
}

export interface ITranscriptChange {
  /** Index of the block added or updated; -1 when only run state changed. */
  index: number;
  added: boolean;
}

export class Transcript {
  constructor(readonly conversationId: string | null = null) {}

  get blocks(): readonly Block[] {
    return this._blocks;
  }

  get changed(): ISignal<this, ITranscriptChange> {
    return this._changed;
  }

  get id(): string | null {
    return this._conversationId ?? this.conversationId;
  }

  run(runId: string): IRun | undefined {
    return this._runs.get(runId);
  }

  /**
   * The run still going (running or awaiting approval), if any. An outside agent's call
   * is not one: the user answers it on its card, and may chat meanwhile.
   */
  get activeRun(): IRun | null {
    for (const run of this._runs.values()) {
      if (run.provider === OUTSIDE_AGENT) {
        continue;
      }
      if (run.state === 'running' || run.state === 'awaiting_approval') {
        return run;
      }
    }
    return null;
  }

  /** The fix running in this conversation (its id), if any. */
  get activeFix(): string | null {
    return this._activeFix;
  }

  /** Whether `runId` is a fix's id (its cell runs need no card: the user asked for them). */
  isFix(runId: string): boolean {
    return this._fixes.has(runId);
  }

  /** Records what an "Undo fix" came to. */
  fixUndone(fixId: string, ok: boolean, note: string): void {
    this._update(
      b => b.kind === 'fixEnd' && b.runId === fixId,
      b => (b.kind === 'fixEnd' ? { ...b, undo: ok ? 'done' : 'failed', undoNote: note } : b)
    );
  }

  /** Whether a run is a call of an outside agent (`OUTSIDE_AGENT`). */
  isOutside(runId: string): boolean {
    return this._runs.get(runId)?.provider === OUTSIDE_AGENT;
  }

  /** Whether a call of an outside agent waits for the user here. */
  get outsideWaiting(): boolean {
    for (const run of this._runs.values()) {
      if (run.provider === OUTSIDE_AGENT && run.state === 'awaiting_approval') {
        return true;
      }
    }
    return false;
  }

  /** The model of the latest run (an outside agent's calls have none). */
  get lastModel(): string | null {
    let model: string | null = null;
    for (const run of this._runs.values()) {
      if (run.provider !== OUTSIDE_AGENT) {
        model = run.model;
      }
    }
    return model;
  }

  /** Questions of earlier runs (from the REST history): shown when their runs replay. */
  setQuestions(questions: ReadonlyMap<string, string>): void {
    for (const [runId, text] of questions) {
      this._questions.set(runId, text);
    }
  }

  /** A question the user just sent (message id `key`), before its run starts. */
  ask(key: string, text: string): void {
    this._push({ kind: 'question', key, runId: null, text, failed: null });
  }

  /** The question `key` was refused before any run started. */
  failQuestion(key: string, reason: string): void {
    this._update(b => b.kind === 'question' && b.key === key, b => ({ ...b, failed: reason }));
  }

  /**
   * A message for the user that is not part of the server's history; the view words
   * it by `code` (a protocol code), showing `message` for codes it does not know.
   */
  addLocalError(code: string, message: string): void {
    this._push({ kind: 'error', key: `local-${++this._local}`, runId: null, code, message });
  }

  /** The outcome of something done in the browser (`/learn`), in the conversation's flow. */
  addReport(text: string, tone: 'info' | 'error', items: readonly IReportItem[] = []): void {
    this._push({ kind: 'report', key: `local-${++this._local}`, runId: null, tone, text, items });
  }

  /** Progress of a notebook request, as the notebook bridge reports it. */
  updateRequest(requestId: string, change: Partial<INotebookRequest>): void {
    this._update(
      b => b.kind === 'call' && b.request?.requestId === requestId,
      b => (b.kind === 'call' && b.request ? { ...b, request: { ...b.request, ...change } } : b)
    );
  }

  /** Folds one conversation event in. `replay`: history, not happening now. */
  apply(event: ConversationEvent, replay = false): void {
    if (event.conversation_id) {
      this._conversationId = event.conversation_id;
    }
    const runId = event.run_id;
    const key = `s${event.seq}`;
    if (event.type !== 'token' && event.type !== 'run_finished') {
      this._pauseStreaming(runId); // text stopped for a tool call, a notice, …
    }
    switch (event.type) {
      case 'fix_started': {
        this._fixes.set(runId, {
          path: event.path,
          cellId: event.cell_id,
          runIds: [],
          changed: false,
          reran: []
        });
        this._activeFix = runId;
        const asked = event.reply_to
          ? this._blocks.findIndex(
              b => b.kind === 'question' && b.key === event.reply_to && b.runId === null
            )
          : -1;
        if (asked >= 0) {
          this._update((_, i) => i === asked, b => ({ ...b, runId }));
        } else {
          this._push({ kind: 'question', key, runId, text: fixQuestion(event.path), failed: null });
        }
        break;
      }
      case 'fix_attempt': {
        const fix = this._fixes.get(runId);
        if (fix && event.patch.length) {
          fix.changed = true;
        }
        for (const cellId of event.reran ?? []) {
          if (fix && !fix.reran.includes(cellId)) {
            fix.reran.push(cellId);
          }
        }
        this._push({
          kind: 'fixStep',
          key,
          runId,
          path: fix?.path ?? '',
          number: event.number,
          error: event.error,
          patch: event.patch,
          result: event.result,
          detail: event.detail
        });
        break;
      }
      case 'fix_finished': {
        const fix = this._fixes.get(runId);
        if (this._activeFix === runId) {
          this._activeFix = null;
        }
        this._push({
          kind: 'fixEnd',
          key,
          runId,
          path: fix?.path ?? '',
          status: event.status,
          reason: event.reason,
          message: event.message,
          attempts: event.attempts,
          runIds: fix ? [...fix.runIds] : [],
          reran: fix ? [...fix.reran] : [],
          undo: fix?.changed ? 'available' : 'none',
          undoNote: null
        });
        break;
      }
      case 'run_started': {
        const fix = this._activeFix ? this._fixes.get(this._activeFix) : undefined;
        if (fix) {
          fix.runIds.push(runId);
        }
        this._runs.set(runId, {
          id: runId,
          task: event.task,
          model: event.model,
          provider: event.provider,
          state: 'running',
          usage: null
        });
        const asked = event.reply_to
          ? this._blocks.findIndex(
              b => b.kind === 'question' && b.key === event.reply_to && b.runId === null
            )
          : -1;
        if (asked >= 0) {
          this._update((_, i) => i === asked, b => ({ ...b, runId }));
        } else if (fix) {
          // An attempt of the fix: its question is the loop's diagnosis, not the user's.
        } else if (event.provider === OUTSIDE_AGENT) {
          const message = `An ${event.model} asks to use a tool; it waits for your answer below.`;
          this._push({ kind: 'notice', key, runId, code: 'outside_agent', message });
        } else {
          const text = this._questions.get(runId) ?? '';
          this._push({ kind: 'question', key, runId, text, failed: null });
        }
        break;
      }
      case 'context':
        this._cite(runId, event.items.flatMap(i => (i.citation ? [i.citation] : [])));
        this._push({
          kind: 'context',
          key,
          runId,
          tokens: event.tokens,
          budget: event.budget,
          items: event.items
        });
        break;
      case 'token': {
        const last = this._blocks[this._blocks.length - 1];
        if (last?.kind === 'answer' && last.runId === runId) {
          this._update(
            (_, i) => i === this._blocks.length - 1,
            b =>
              b.kind === 'answer'
                ? { ...b, text: b.text + event.text, citations: this._citationsOf(runId) }
                : b
          );
        } else {
          this._push({
            kind: 'answer',
            key,
            runId,
            text: event.text,
            streaming: true,
            citations: this._citationsOf(runId)
          });
        }
        break;
      }
      case 'notice':
        this._push({ kind: 'notice', key, runId, code: event.code, message: event.message });
        break;
      case 'tool_call':
        this._push(newCall(key, runId, event.call_id, event.name, event.arguments, event.risk, {
          decision: event.decision
        }));
        break;
      case 'approval_required': {
        const approval: IApproval = {
          expiresAt: event.expires_at,
          patch: event.patch,
          outsideSandbox: event.outside_sandbox === true,
          resolution: null,
          ...(this.isOutside(runId) ? { editable: false } : {})
        };
        this._setRunState(runId, 'awaiting_approval');
        if (!this._updateCall(runId, event.call_id, b => ({ ...b, approval }))) {
          this._push(newCall(key, runId, event.call_id, event.name, event.arguments, event.risk, {
            approval
          }));
        }
        break;
      }
      case 'approval_resolved': {
        const edited = event.arguments ?? null;
        const resolution = {
          decision: event.decision,
          by: event.by,
          reason: event.reason,
          edited: edited !== null
        };
        this._updateCall(runId, event.call_id, b =>
          b.approval
            ? { ...b, ...(edited ? { arguments: edited } : {}), approval: { ...b.approval, resolution } }
            : b
        );
        this._setRunState(runId, 'running');
        break;
      }
      case 'notebook_patch':
      case 'notebook_execute': {
        if (this._fixes.has(runId)) {
          break; // the fix re-running cells to verify: its step says what came of it
        }
        const request: INotebookRequest = {
          requestId: event.request_id,
          kind: event.type === 'notebook_patch' ? 'patch' : 'execute',
          path: event.path,
          patch: event.type === 'notebook_patch' ? event.patch : null,
          cellId: event.type === 'notebook_execute' ? event.cell_id : null,
          state: replay ? 'past' : 'pending',
          reason: null,
          undoable: false,
          held: true
        };
        const open = this._lastOpenCall(runId);
        if (open >= 0) {
          this._update((_, i) => i === open, b => ({ ...b, request }));
        } else {
          // A request with no tool call seen for it (a run of another client): nothing
          // here approved it, so the user confirms it on its card.
          const risk = request.kind === 'patch' ? 'edit' : 'run';
          this._push(newCall(key, runId, event.request_id, event.type, null, risk, {
            decision: 'approve',
            request
          }));
        }
        break;
      }
      case 'tool_result': {
        const result: ICallResult = {
          ok: event.ok,
          content: event.content,
          error: event.error,
          outputs: event.outputs ?? null,
          citations: event.citations ?? []
        };
        this._cite(runId, result.citations);
        this._updateCall(runId, event.call_id, b => ({ ...b, result }));
        break;
      }
      case 'run_finished': {
        const run = this._runs.get(runId);
        if (run) {
          run.state = event.status;
          run.usage = event.usage;
        }
        this._endStreaming(runId, event.text);
        if (run?.provider !== OUTSIDE_AGENT) {
          this._push({ kind: 'finished', key, runId, status: event.status, usage: event.usage });
        }
        break;
      }
      case 'error':
        this._push({ kind: 'error', key, runId, code: event.code, message: event.message });
        break;
    }
  }

  private _pauseStreaming(runId: string): void {
    const last = this._blocks.length - 1;
    const block = this._blocks[last];
    if (block?.kind === 'answer' && block.runId === runId && block.streaming) {
      this._update((_, i) => i === last, b => ({ ...b, streaming: false }));
    }
  }

  private _endStreaming(runId: string, finalText: string): void {
    let answered = false;
    this._blocks.forEach((b, i) => {
      if (b.kind === 'answer' && b.runId === runId) {
        answered = answered || b.text.trim().length > 0;
        if (b.streaming) {
          this._update((_, j) => j === i, x => ({ ...x, streaming: false }));
        }
      }
    });
    if (!answered && finalText.trim()) {
      this._push({
        kind: 'answer',
        key: `final-${runId}`,
        runId,
        text: finalText,
        streaming: false,
        citations: this._citationsOf(runId)
      });
    }
  }

  /** Every citation of a run so far, in order of arrival (the same array until one comes). */
  citationsOf(runId: string): readonly ICitation[] {
    return this._citationsOf(runId);
  }

  private _citationsOf(runId: string): ICitation[] {
    return this._citations.get(runId) ?? [];
  }

  private _cite(runId: string, citations: readonly ICitation[]): void {
    if (citations.length) {
      this._citations.set(runId, [...this._citationsOf(runId), ...citations]);
    }
  }

  private _lastOpenCall(runId: string): number {
    for (let i = this._blocks.length - 1; i >= 0; i--) {
      const b = this._blocks[i];
      if (b.kind === 'call' && b.runId === runId && b.result === null && b.request === null) {
        return i;
      }
    }
    return -1;
  }

  private _updateCall(
    runId: string,
    callId: string,
    change: (b: CallBlock) => Block
  ): boolean {
    return this._update(
      b => b.kind === 'call' && b.runId === runId && b.callId === callId,
      b => (b.kind === 'call' ? change(b) : b)
    );
  }

  private _setRunState(runId: string, state: RunState): void {
    const run = this._runs.get(runId);
    if (run && run.state !== state && (run.state === 'running' || run.state === 'awaiting_approval')) {
      run.state = state;
      this._changed.emit({ index: -1, added: false });
    }
  }

  private _push(block: Block): void {
    this._blocks.push(block);
    this._changed.emit({ index: this._blocks.length - 1, added: true });
  }

  /** Replaces the last block matching `where`; false when none does. */
  private _update(
    where: (b: Block, i: number) => boolean,
    change: (b: Block) => Block
  ): boolean {
    for (let i = this._blocks.length - 1; i >= 0; i--) {
      if (where(this._blocks[i], i)) {
        this._blocks[i] = change(this._blocks[i]);
        this._changed.emit({ index: i, added: false });
        return true;
      }
    }
    return false;
  }

  private readonly _blocks: Block[] = [];
  private readonly _runs = new Map<string, IRun>();
  private readonly _questions = new Map<string, string>();
  private readonly _citations = new Map<string, ICitation[]>();
  private readonly _changed = new Signal<this, ITranscriptChange>(this);
  private _conversationId: string | null = null;
  private _local = 0;
  private readonly _fixes = new Map<string, IFix>();
  private _activeFix: string | null = null;
}
