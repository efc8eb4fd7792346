/**
 * Editing a tool call's arguments before approving it: each string argument gets its
 * own box (code in a code editor, no JSON escapes), a cell reference a choice among the
 * notebook's cells, anything else one JSON box.
 */

/** Arguments naming a cell by id (or null: the top), chosen from the cells, never typed. */
export const CELL_REFERENCES: readonly string[] = ['after_id'];
/** String arguments holding code or file text: edited in a code editor. */
export const CODE_ARGUMENTS: readonly string[] = ['source', 'code', 'content'];

export interface IArgumentForm {
  strings: [string, string][];
  /** Cell references: a cell id, or null for "at the top". */
  cells: [string, string | null][];
  /** The other arguments as pretty JSON, or "" when there are none. */
  rest: string;
}

export function toForm(args: Record<string, unknown>): IArgumentForm {
  const strings: [string, string][] = [];
  const cells: [string, string | null][] = [];
  const rest: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(args)) {
    if (CELL_REFERENCES.includes(key) && (typeof value === 'string' || value === null)) {
      cells.push([key, value]);
    } else if (typeof value === 'string') {
      strings.push([key, value]);
    } else {
      rest[key] = value;
    }
  }
  return { strings, cells, rest: Object.keys(rest).length ? JSON.stringify(rest, null, 2) : '' };
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
  return {
    ok: true,
    arguments: {
      ...(rest as Record<string, unknown>),
      ...Object.fromEntries(form.strings),
      ...Object.fromEntries(form.cells)
    }
  };
}

/** Whether the form differs from the original arguments. */
export function isEdited(original: Record<string, unknown>, form: IArgumentForm): boolean {
  const result = fromForm(form);
  return !result.ok || JSON.stringify(sortKeys(result.arguments)) !== JSON.stringify(sortKeys(original));
}

function sortKeys(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => a.localeCompare(b)));
}
