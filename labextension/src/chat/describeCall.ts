/**
 * One sentence saying what a tool call will do, for the approval card. Known tools get
 * their own wording; any other tool is described by its name and arguments. Cells are
 * named as the user sees them (`CellNamer`): their position and first line, not their id.
 */

type Args = Record<string, unknown> | null;

/** How a card names a cell by id ("cell 3 “df.head()”"); the source is a fallback hint. */
export type CellNamer = (cellId: string, source?: string) => string;

/** A cell's name from its position (from 1, as the prompts number cells) and source. */
export function cellName(position: number | null, source: string): string {
  const line = firstLine(source);
  const name = position === null ? 'a cell' : `cell ${position}`;
  return line ? `${name} “${line}”` : name;
}

/** Without the notebook open here: a cell is named by the source it had, never its id. */
export const noNotebook: CellNamer = (_, source) => cellName(null, source ?? '');

function str(args: Args, key: string): string | null {
  const value = args?.[key];
  return typeof value === 'string' && value ? value : null;
}

function firstLine(text: string | null): string {
  const line = (text ?? '').split('\n').find(l => l.trim()) ?? '';
  return line.length > 60 ? `${line.slice(0, 60)}…` : line;
}

export function describeCall(name: string, args: Args, names: CellNamer = noNotebook): string {
  const path = str(args, 'path') ?? 'the active notebook';
  const id = str(args, 'cell_id');
  const cell = id ? names(id) : 'a cell';
  switch (name) {
    case 'list_cells':
      return `List the cells of ${path}`;
    case 'read_cell':
      return `Read ${cell} of ${path}`;
    case 'insert_cell': {
      const after = str(args, 'after_id');
      const kind = str(args, 'cell_type') ?? 'code';
      return `Insert a ${kind} cell into ${path} ${after ? `after ${names(after)}` : 'at the top'}`;
    }
    case 'replace_cell':
      return `Change ${cell} in ${path}`;
    case 'delete_cell':
      return `Delete ${cell} from ${path}`;
    case 'run_cell':
      return `Run ${cell} of ${path} in its kernel`;
    case 'execute_code':
      return `Run code in the kernel of ${path}: ${firstLine(str(args, 'code'))}`;
    case 'read_file':
      return `Read the file ${path}`;
    case 'write_file':
      return `Write the file ${path}`;
    case 'list_files':
      return `List the files in ${str(args, 'path') ?? 'the workspace'}`;
    case 'search_files':
      return `Search the files for "${str(args, 'query') ?? str(args, 'pattern') ?? ''}"`;
    case 'search_knowledge':
      return `Search your indexed files for "${firstLine(str(args, 'query'))}"`;
    case 'notebook_patch':
      return 'Change the open notebook';
    case 'notebook_execute':
      return 'Run a cell of the open notebook';
    default: {
      const keys = Object.keys(args ?? {});
      return keys.length ? `Call ${name} (${keys.join(', ')})` : `Call ${name}`;
    }
  }
}
