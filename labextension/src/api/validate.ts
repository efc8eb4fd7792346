/**
 * Runtime checks for server responses: a malformed answer becomes one clear error
 * here instead of an `undefined` deep inside the UI code.
 */
import type {
  IBackendStatus,
  IKernelEvent,
  IKernelEventsResponse,
  IStatusResponse
} from './types';

/** Raised when a response does not have the documented shape. */
export class ResponseShapeError extends Error {
  constructor(what: string, path: string) {
    super(`aiide: unexpected ${what} response: ${path}`);
    this.name = 'ResponseShapeError';
  }
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function field<T>(
  obj: Json,
  key: string,
  check: (v: unknown) => v is T,
  what: string,
  path: string
): T {
  const value = obj[key];
  if (!check(value)) {
    throw new ResponseShapeError(what, `${path}.${key}`);
  }
  return value;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isBoolean = (v: unknown): v is boolean => typeof v === 'boolean';
const isStringOrNull = (v: unknown): v is string | null =>
  v === null || typeof v === 'string';

function backend(value: unknown, path: string): IBackendStatus {
  if (!isObject(value)) {
    throw new ResponseShapeError('status', path);
  }
  return {
    available: field(value, 'available', isBoolean, 'status', path),
    detail: field(value, 'detail', isString, 'status', path),
    fix: value.fix === undefined ? null : field(value, 'fix', isStringOrNull, 'status', path)
  };
}

/** Checks and copies a `GET /aiide/api/status` body. */
export function parseStatus(data: unknown): IStatusResponse {
  const what = 'status';
  if (!isObject(data)) {
    throw new ResponseShapeError(what, '$');
  }
  const sandbox = field(data, 'sandbox', isObject, what, '$');
  const rawBackends = field(sandbox, 'backends', isObject, what, '$.sandbox');
  const backends: Record<string, IBackendStatus> = {};
  for (const [name, value] of Object.entries(rawBackends)) {
    backends[name] = backend(value, `$.sandbox.backends.${name}`);
  }
  const limits = field(sandbox, 'limits', isObject, what, '$.sandbox');
  const model = field(data, 'model', isObject, what, '$');
  return {
    version: field(data, 'version', isString, what, '$'),
    sandbox: {
      default_backend: field(sandbox, 'default_backend', isString, what, '$.sandbox'),
      backends,
      limits: {
        enforced: field(limits, 'enforced', isBoolean, what, '$.sandbox.limits'),
        detail: field(limits, 'detail', isString, what, '$.sandbox.limits')
      }
    },
    model: {
      configured: field(model, 'configured', isBoolean, what, '$.model'),
      help:
        model.help === undefined
          ? null
          : field(model, 'help', isStringOrNull, what, '$.model')
    }
  };
}

/** Checks and copies a `GET /aiide/api/kernels/<id>/events` body. */
export function parseKernelEvents(data: unknown): IKernelEventsResponse {
  const what = 'kernel events';
  if (!isObject(data)) {
    throw new ResponseShapeError(what, '$');
  }
  const rawEvents = data.events;
  if (!Array.isArray(rawEvents)) {
    throw new ResponseShapeError(what, '$.events');
  }
  const events: IKernelEvent[] = rawEvents.map((raw: unknown, i) => {
    const path = `$.events[${i}]`;
    if (!isObject(raw)) {
      throw new ResponseShapeError(what, path);
    }
    return {
      time: field(raw, 'time', isString, what, path),
      kind: field(raw, 'kind', isString, what, path),
      message: field(raw, 'message', isString, what, path)
    };
  });
  return { kernel_id: field(data, 'kernel_id', isString, what, '$'), events };
}
