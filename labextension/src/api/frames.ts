/**
 * Checks each frame the chat socket receives against the documented shapes
 * (docs/protocol.md). A frame that does not fit becomes one `invalid` result the UI can
 * explain, never an `undefined` deep inside rendering code.
 *
 * Fields a newer server adds are tolerated; missing or mistyped documented fields are not.
 */
import type { ControlMessage, ConversationEvent } from './protocol';

export type ParsedFrame =
  | { kind: 'event'; event: ConversationEvent }
  | { kind: 'control'; message: ControlMessage }
  | { kind: 'invalid'; type: string | null; reason: string };

type Check = (value: unknown) => boolean;

const str: Check = v => typeof v === 'string';
const nonEmpty: Check = v => typeof v === 'string' && v.length > 0;
const num: Check = v => typeof v === 'number' && Number.isFinite(v);
const int: Check = v => Number.isInteger(v) && (v as number) >= 0;
const bool: Check = v => typeof v === 'boolean';
const nul: Check = v => v === null;
const obj: Check = v => typeof v === 'object' && v !== null && !Array.isArray(v);
const or =
  (...checks: Check[]): Check =>
  v =>
    checks.some(c => c(v));
const oneOf =
  (...values: string[]): Check =>
  v =>
    typeof v === 'string' && values.includes(v);
const optional = (check: Check): Check => or(v => v === undefined, check);
const arrayOf =
  (check: Check): Check =>
  v =>
    Array.isArray(v) && v.every(check);
const shape =
  (fields: Record<string, Check>): Check =>
  v =>
    obj(v) && Object.entries(fields).every(([k, c]) => c((v as Record<string, unknown>)[k]));

const risk = oneOf('read', 'edit', 'run', 'write', 'network', 'low', 'medium', 'high');
const cellType = oneOf('code', 'markdown', 'raw');
const idOrNull = or(nonEmpty, nul);
const replyTo = optional(or(str, nul));

const patchOp: Check = v => {
  if (!obj(v)) {
    return false;
  }
  const op = v as Record<string, unknown>;
  switch (op.op) {
    case 'insert':
      return (
        idOrNull(op.after_id) &&
        shape({ id: nonEmpty, cell_type: cellType, source: str })(op.cell)
      );
    case 'replace':
      return (
        nonEmpty(op.cell_id) &&
        str(op.expected_source) &&
        str(op.source) &&
        optional(cellType)(op.cell_type)
      );
    case 'delete':
      return nonEmpty(op.cell_id) && str(op.expected_source);
    case 'move':
      return nonEmpty(op.cell_id) && idOrNull(op.after_id);
    default:
      return false;
  }
};
const intOrNull = or(v => Number.isInteger(v) && (v as number) >= 0, nul);
const citation = shape({
  path: nonEmpty,
  cell_id: idOrNull,
  cell_index: intOrNull,
  line_start: intOrNull,
  line_end: intOrNull,
  title: str,
  label: nonEmpty
});
const patch = shape({ path: nonEmpty, ops: v => arrayOf(patchOp)(v) && (v as []).length > 0 });

const EVENT_BASE: Record<string, Check> = {
  conversation_id: nonEmpty,
  run_id: nonEmpty,
  seq: v => Number.isInteger(v) && (v as number) >= 1,
  ts: num
};

/** Fields of each conversation event, beyond `type`, ids, `seq` and `ts`. */
const EVENTS: Record<string, Record<string, Check>> = {
  run_started: {
    reply_to: replyTo,
    task: oneOf('agent', 'chat'),
    model: str,
    provider: str
  },
  context: {
    tokens: int,
    budget: int,
    items: arrayOf(shape({ kind: str, ref: str, tokens: int, citation: optional(citation) }))
  },
  token: { text: str },
  notice: { code: str, message: str },
  tool_call: {
    call_id: nonEmpty,
    name: str,
    arguments: or(obj, nul),
    risk,
    decision: oneOf('auto', 'approve', 'deny')
  },
  approval_required: {
    call_id: nonEmpty,
    name: str,
    arguments: obj,
    risk,
    expires_at: num,
    patch: or(patch, nul),
    outside_sandbox: optional(bool)
  },
  approval_resolved: {
    call_id: nonEmpty,
    decision: oneOf('approve', 'reject', 'expired'),
    by: or(str, nul),
    reason: or(str, nul),
    arguments: optional(obj)
  },
  notebook_patch: { request_id: nonEmpty, path: nonEmpty, patch },
  notebook_execute: {
    request_id: nonEmpty,
    path: nonEmpty,
    cell_id: nonEmpty,
    kernel_id: optional(or(str, nul))
  },
  tool_result: {
    call_id: nonEmpty,
    name: str,
    ok: bool,
    content: str,
    error: or(nul, shape({ code: str, message: str })),
    outputs: optional(or(nul, arrayOf(obj))),
    citations: optional(arrayOf(citation))
  },
  run_finished: {
    status: oneOf('completed', 'failed', 'cancelled', 'expired'),
    text: str,
    usage: shape({
      input_tokens: int,
      output_tokens: int,
      model_calls: int,
      tool_calls: int,
      steps: int
    })
  },
  error: { code: nonEmpty, message: str, reply_to: replyTo },
  fix_started: { reply_to: replyTo, path: nonEmpty, cell_id: idOrNull, max_attempts: int },
  fix_attempt: {
    number: int,
    attempt_run_id: idOrNull,
    error: shape({ cell_id: str, ename: str, evalue: str, kind: str }),
    patch: arrayOf(
      shape({
        cell_id: str,
        op: oneOf('replace', 'insert', 'delete'),
        before: or(str, nul),
        after: or(str, nul)
      })
    ),
    approvals: arrayOf(obj),
    result: str,
    detail: str,
    reran: arrayOf(str),
    tokens: int,
    seconds: num
  },
  fix_finished: {
    status: oneOf('verified', 'not_verified'),
    reason: str,
    message: str,
    error_cell: or(str, nul),
    attempts: int,
    tokens: int,
    seconds: num
  }
};

const CONTROL: Record<string, Record<string, Check>> = {
  hello: {
    protocol: int,
    run_id: nul,
    seq: nul,
    max_message_bytes: int,
    heartbeat_seconds: v => num(v) && (v as number) >= 0
  },
  pong: { reply_to: replyTo, run_id: nul, seq: nul, ts: num },
  resumed: {
    reply_to: replyTo,
    conversation_id: nonEmpty,
    run_id: nul,
    seq: nul,
    after_seq: int,
    replayed: int,
    last_seq: int
  },
  error: {
    conversation_id: idOrNull,
    run_id: idOrNull,
    seq: nul,
    ts: num,
    code: nonEmpty,
    message: str,
    reply_to: replyTo
  }
};

function firstBad(value: Record<string, unknown>, fields: Record<string, Check>): string | null {
  for (const [name, check] of Object.entries(fields)) {
    if (!check(value[name])) {
      return name;
    }
  }
  return null;
}

/** Parses one text frame; never throws. */
export function parseFrame(text: string): ParsedFrame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: 'invalid', type: null, reason: 'the frame is not JSON' };
  }
  if (!obj(value)) {
    return { kind: 'invalid', type: null, reason: 'the frame is not a JSON object' };
  }
  const frame = value as Record<string, unknown>;
  const type = typeof frame.type === 'string' ? frame.type : null;
  if (type === null) {
    return { kind: 'invalid', type: null, reason: "the frame has no 'type'" };
  }
  const isEvent = frame.seq !== null && frame.seq !== undefined;
  const fields = isEvent ? EVENTS[type] : CONTROL[type];
  if (!fields) {
    const known = type in EVENTS || type in CONTROL;
    return {
      kind: 'invalid',
      type,
      reason: known
        ? `'${type}' ${isEvent ? 'has a seq but is not a conversation event' : 'has no seq'}`
        : `unknown message type '${type}'`
    };
  }
  const bad = firstBad(frame, isEvent ? { ...EVENT_BASE, ...fields } : fields);
  if (bad !== null) {
    return { kind: 'invalid', type, reason: `'${type}' has a missing or wrong '${bad}'` };
  }
  return isEvent
    ? { kind: 'event', event: frame as unknown as ConversationEvent }
    : { kind: 'control', message: frame as unknown as ControlMessage };
}
