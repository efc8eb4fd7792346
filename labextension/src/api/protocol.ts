/**
 * Wire types of the chat protocol (docs/protocol.md, version 1): the frames of
 * `/aiide/api/chat/ws` and the bodies of the agent REST routes.
 *
 * Kept free of JupyterLab imports so the pure logic and its tests can use them.
 */

export const PROTOCOL_VERSION = 1;

export type Task = 'agent' | 'chat';
/**
 * What a tool call does, least risky first (docs/agent.md); an MCP tool is rated by the
 * tier of its server, and runs stored before the five risks say low / medium / high.
 */
export type Risk = 'read' | 'edit' | 'run' | 'write' | 'network' | 'low' | 'medium' | 'high';
export type CellType = 'code' | 'markdown' | 'raw';

// -- notebook patches ---------------------------------------------------------------

export interface IPatchCell {
  id: string;
  cell_type: CellType;
  source: string;
}

export type PatchOp =
  | { op: 'insert'; after_id: string | null; cell: IPatchCell }
  | {
      op: 'replace';
      cell_id: string;
      expected_source: string;
      source: string;
      cell_type?: CellType;
    }
  | { op: 'delete'; cell_id: string; expected_source: string }
  | { op: 'move'; cell_id: string; after_id: string | null };

export interface IPatch {
  path: string;
  ops: PatchOp[];
}

// -- client -> server ---------------------------------------------------------------

export type Mention =
  /** `lines`: [start, end], 1-based, inclusive — a passage, sent instead of the file. */
  | { kind: 'file'; path: string; lines?: [number, number] }
  | { kind: 'folder'; path: string }
  | { kind: 'cell'; path: string; cell_id: string };

export interface IChatContext {
  notebook?: string;
  cell_id?: string;
  selection?: string;
  /** The file open in the editor, when the user works in one rather than a notebook. */
  file?: string;
  /** The cursor's line in `file`, from 1. */
  line?: number;
  mentions?: Mention[];
}

export interface IChatMessage {
  type: 'chat';
  id?: string;
  conversation_id?: string | null;
  text: string;
  task?: Task;
  model?: string;
  context?: IChatContext;
}

export interface IApproveMessage {
  type: 'approve';
  id?: string;
  conversation_id: string;
  run_id: string;
  call_id: string;
  decision: 'approve' | 'reject';
  reason?: string;
  arguments?: Record<string, unknown>;
}

export interface ICancelMessage {
  type: 'cancel';
  id?: string;
  conversation_id: string;
  run_id: string;
}

export interface IResumeMessage {
  type: 'resume';
  id?: string;
  conversation_id: string;
  after_seq: number;
}

export interface IPingMessage {
  type: 'ping';
  id?: string;
}

export interface INotebookOpenMessage {
  type: 'notebook_open' | 'notebook_close';
  id?: string;
  path: string;
}

export type NotebookResultStatus = 'applied' | 'ok' | 'error' | 'conflict' | 'rejected';

export interface INotebookResultMessage {
  type: 'notebook_result';
  id?: string;
  conversation_id: string;
  run_id: string;
  request_id: string;
  status: NotebookResultStatus;
  reason?: string;
  outputs?: Record<string, unknown>[];
}

/** Starts the fix loop on a cell's error (docs/fixloop.md). */
export interface IFixMessage {
  type: 'fix';
  id?: string;
  conversation_id?: string | null;
  path: string;
  cell_id?: string;
  model?: string;
  max_attempts?: number;
}

export type ClientMessage =
  | IChatMessage
  | IFixMessage
  | IApproveMessage
  | ICancelMessage
  | IResumeMessage
  | IPingMessage
  | INotebookOpenMessage
  | INotebookResultMessage;

// -- server -> client: control messages (seq null, never replayed) ------------------

export interface IHello {
  type: 'hello';
  protocol: number;
  run_id: null;
  seq: null;
  max_message_bytes: number;
  heartbeat_seconds: number;
}

export interface IPong {
  type: 'pong';
  reply_to?: string | null;
  run_id: null;
  seq: null;
  ts: number;
}

export interface IResumed {
  type: 'resumed';
  reply_to?: string | null;
  conversation_id: string;
  run_id: null;
  seq: null;
  after_seq: number;
  replayed: number;
  last_seq: number;
}

/** An error: a conversation event when `seq` is set, a control message otherwise. */
export interface IErrorMessage {
  type: 'error';
  conversation_id: string | null;
  run_id: string | null;
  seq: number | null;
  ts: number;
  code: string;
  message: string;
  reply_to?: string | null;
}

// -- server -> client: conversation events ------------------------------------------

interface IEventBase {
  conversation_id: string;
  run_id: string;
  seq: number;
  ts: number;
}

export interface IRunStarted extends IEventBase {
  type: 'run_started';
  reply_to?: string | null;
  task: Task;
  model: string;
  provider: string;
}

/** A passage's source (docs/protocol.md, Citations): untrusted text, shown as text. */
export interface ICitation {
  path: string;
  cell_id: string | null;
  /** Counted from 0. */
  cell_index: number | null;
  /** 1-based, inclusive; lines of the cell in a notebook. */
  line_start: number | null;
  line_end: number | null;
  title: string;
  /** What the model saw in brackets and cites with. */
  label: string;
}

export interface IContextItem {
  kind: string;
  ref: string;
  tokens: number;
  /** A knowledge passage's source. */
  citation?: ICitation;
  /** Why an image output was not sent (model without vision, budget, corrupt image). */
  note?: string;
}

export interface IContextEvent extends IEventBase {
  type: 'context';
  tokens: number;
  budget: number;
  items: IContextItem[];
}

export interface IToken extends IEventBase {
  type: 'token';
  text: string;
}

export interface INotice extends IEventBase {
  type: 'notice';
  code: string;
  message: string;
}

export interface IToolCall extends IEventBase {
  type: 'tool_call';
  call_id: string;
  name: string;
  arguments: Record<string, unknown> | null;
  risk: Risk;
  decision: 'auto' | 'approve' | 'deny';
}

export interface IApprovalRequired extends IEventBase {
  type: 'approval_required';
  call_id: string;
  name: string;
  arguments: Record<string, unknown>;
  risk: Risk;
  expires_at: number;
  patch: IPatch | null;
  /** The code would run in a kernel that is not sandboxed (an admin allowed it). */
  outside_sandbox?: boolean;
}

export interface IApprovalResolved extends IEventBase {
  type: 'approval_resolved';
  call_id: string;
  decision: 'approve' | 'reject' | 'expired';
  by: string | null;
  reason: string | null;
  /** The arguments as the approver changed them (only when they did). */
  arguments?: Record<string, unknown>;
}

export interface INotebookPatch extends IEventBase {
  type: 'notebook_patch';
  request_id: string;
  path: string;
  patch: IPatch;
}

export interface INotebookExecute extends IEventBase {
  type: 'notebook_execute';
  request_id: string;
  path: string;
  cell_id: string;
  /** The notebook session's kernel the server checked (null: it saw none). */
  kernel_id?: string | null;
}

export interface IToolResult extends IEventBase {
  type: 'tool_result';
  call_id: string;
  name: string;
  ok: boolean;
  content: string;
  error: { code: string; message: string } | null;
  outputs?: Record<string, unknown>[] | null;
  /** Sources of the passages in `content` (search_knowledge). */
  citations?: ICitation[];
}

export interface IUsage {
  input_tokens: number;
  output_tokens: number;
  model_calls: number;
  tool_calls: number;
  steps: number;
}

export type RunStatus = 'completed' | 'failed' | 'cancelled' | 'expired';

export interface IRunFinished extends IEventBase {
  type: 'run_finished';
  status: RunStatus;
  usage: IUsage;
  text: string;
}

/** An `error` that concerns a run: persisted, sequenced, replayed. */
export interface IRunError extends IEventBase {
  type: 'error';
  code: string;
  message: string;
  reply_to?: string | null;
}

/** A fix loop began (`run_id` is the fix's id). */
export interface IFixStarted extends IEventBase {
  type: 'fix_started';
  reply_to?: string | null;
  path: string;
  cell_id: string | null;
  max_attempts: number;
}

/** One changed cell of a fix attempt. */
export interface IFixPatchCell {
  cell_id: string;
  op: 'replace' | 'insert' | 'delete';
  before: string | null;
  after: string | null;
}

/** One attempt of a fix: the error it worked on, its change, its result. */
export interface IFixAttempt extends IEventBase {
  type: 'fix_attempt';
  number: number;
  attempt_run_id: string | null;
  error: { cell_id: string; ename: string; evalue: string; kind: string };
  patch: IFixPatchCell[];
  approvals: Record<string, unknown>[];
  result: string;
  detail: string;
  reran: string[];
  tokens: number;
  seconds: number;
}

export interface IFixFinished extends IEventBase {
  type: 'fix_finished';
  status: 'verified' | 'not_verified';
  reason: string;
  message: string;
  error_cell: string | null;
  attempts: number;
  tokens: number;
  seconds: number;
}

export type ConversationEvent =
  | IFixStarted
  | IFixAttempt
  | IFixFinished
  | IRunStarted
  | IContextEvent
  | IToken
  | INotice
  | IToolCall
  | IApprovalRequired
  | IApprovalResolved
  | INotebookPatch
  | INotebookExecute
  | IToolResult
  | IRunFinished
  | IRunError;

export type ControlMessage = IHello | IPong | IResumed | IErrorMessage;

// -- REST -----------------------------------------------------------------------------

export interface IConversationSummary {
  id: string;
  title: string;
  created: number;
  updated: number;
  last_seq: number;
  active_run: string | null;
}

export interface ITurn {
  role: 'user' | 'assistant';
  text: string;
  run_id: string | null;
}

export interface IConversationDetail extends IConversationSummary {
  turns: ITurn[];
  runs: { id: string; state: string; usage: Record<string, unknown> }[];
}

export interface IModelInfo {
  name: string;
  provider: string;
  capabilities: string[];
}

export interface ICompleteRequest {
  prefix: string;
  suffix?: string;
  language?: string;
  path?: string;
  /** The notebook cell being completed (a course's tutor mode keeps solution cells off). */
  cell_id?: string;
  max_tokens?: number;
  /** NDJSON lines of the growing text, then the answer (`streamCompletion`). */
  stream?: boolean;
}

export interface ICompleteResponse {
  completion: string;
  model: string;
  usage: { input_tokens: number; output_tokens: number };
}
