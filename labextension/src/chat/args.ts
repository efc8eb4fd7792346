/**
 * Editing a tool call's arguments before approving it: each string argument gets its
 * own text box (code stays readable, no JSON escapes), anything else one JSON box.
 */

export interface IArgumentForm {
  strings: [string, string][];
  /** The non-string arguments as pretty JSON, or "" when there are none. */
  rest: string;
}

export function toForm(args: Record<string, unknown>): IArgumentForm {
  const strings: [string, string][] = [];
  const rest: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(args)) {
    if (typeof value === 'string') {
      strings.push([key, value]);
    } else {
      rest[key] = value;
    }
  }
  return { strings, rest: Object.keys(rest).length ? JSON.stringify(rest, null, 2) : '' };
}

export type FormResult =
  | { ok: true; arguments: Record<string, unknown> }
  | { ok: false; error: string };

/** The edited arguments, or why the JSON box is not valid. */
export function fromForm(form: IArgumentForm): FormResult {
  let rest: unknown = {};
  if (form.rest.trim()) {
    try {
      rest = JSON.parse(form.rest);
    } catch (error) {
      return { ok: false, error: `not valid JSON: ${(error as Error).message}` };
    }
    if (typeof rest !== 'object' || rest === null || Array.isArray(rest)) {
      return { ok: false, error: 'the other arguments must be a JSON object' };
    }
  }
  return { ok: true, arguments: { ...(rest as Record<string, unknown>), ...Object.fromEntries(form.strings) } };
}

/** Whether the form differs from the original arguments. */
export function isEdited(original: Record<string, unknown>, form: IArgumentForm): boolean {
  const result = fromForm(form);
  return !result.ok || JSON.stringify(sortKeys(result.arguments)) !== JSON.stringify(sortKeys(original));
}

function sortKeys(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => a.localeCompare(b)));
}
