/**
 * Small runtime checks for JSON bodies: a malformed answer becomes one clear
 * `ResponseShapeError` naming the bad field, instead of an `undefined` deep in the UI.
 */

/** Raised when a response does not have the documented shape. */
export class ResponseShapeError extends Error {
  constructor(what: string, path: string) {
    super(`aiide: unexpected ${what} response: ${path}`);
    this.name = 'ResponseShapeError';
  }
}

export type Json = Record<string, unknown>;

export function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export const isString = (v: unknown): v is string => typeof v === 'string';
export const isBoolean = (v: unknown): v is boolean => typeof v === 'boolean';
export const isNumber = (v: unknown): v is number =>
  typeof v === 'number' && Number.isFinite(v);
export const isStringOrNull = (v: unknown): v is string | null =>
  v === null || typeof v === 'string';

export function field<T>(
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

/** The body as an object, or a `ResponseShapeError` for `what`. */
export function objectBody(data: unknown, what: string): Json {
  if (!isObject(data)) {
    throw new ResponseShapeError(what, '$');
  }
  return data;
}

/** `obj[key]` as an array of checked items (`each` gets the item and its path). */
export function listField<T>(
  obj: Json,
  key: string,
  what: string,
  path: string,
  each: (item: Json, path: string) => T
): T[] {
  const raw = obj[key];
  if (!Array.isArray(raw)) {
    throw new ResponseShapeError(what, `${path}.${key}`);
  }
  return raw.map((item: unknown, i) => {
    const itemPath = `${path}.${key}[${i}]`;
    if (!isObject(item)) {
      throw new ResponseShapeError(what, itemPath);
    }
    return each(item, itemPath);
  });
}
