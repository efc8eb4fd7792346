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
import {
  ResponseShapeError,
  field,
  isBoolean,
  isObject,
  isString,
  isStringOrNull,
  listField,
  objectBody
} from './json';

export { ResponseShapeError };

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
  const body = objectBody(data, what);
  const events: IKernelEvent[] = listField(body, 'events', what, '$', (raw, path) => ({
    time: field(raw, 'time', isString, what, path),
    kind: field(raw, 'kind', isString, what, path),
    message: field(raw, 'message', isString, what, path)
  }));
  return { kernel_id: field(body, 'kernel_id', isString, what, '$'), events };
}
