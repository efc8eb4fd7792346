/**
 * One sentence saying what a tool call will do, for the approval card. Known tools get
 * their own wording; any other tool is described by its name and arguments.
 */

type Args = Record<string, unknown> | null;

function str(args: Args, key: string): string | null {
  const value = args?.[key];
  return typeof value === 'string' && value ? value : null;
}

function firstLine(text: string | null): string {
  const line = (text ?? '').split('\n').find(l => l.trim()) ?? '';
  return line.length > 60 ? `${line.slice(0, 60)}…` : line;
}

export function describeCall(name: string, args: Args): string {
  const path = str(args, 'path') ?? 'the active notebook';
  const cell = str(args, 'cell_id');
  switch (name) {
    case 'list_cells':
      return `List the cells of ${path}`;
    case 'read_cell':
      return `Read cell ${cell ?? '?'} of ${path}`;
    case 'insert_cell': {
      const after = str(args, 'after_id');
      const kind = str(args, 'cell_type') ?? 'code';
      return `Insert a ${kind} cell into ${path} ${after ? `after cell ${after}` : 'at the top'}`;
    }
    case 'replace_cell':
      return `Change the source of cell ${cell ?? '?'} in ${path}`;
    case 'delete_cell':
      return `Delete cell ${cell ?? '?'} from ${path}`;
    case 'run_cell':
      return `Run cell ${cell ?? '?'} of ${path} in its kernel`;
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
