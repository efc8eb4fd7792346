/**
 * What the cell actions ask: the question text, the task, and the context for one
 * cell. Pure, so the wording and the traceback handling are unit-tested.
 */
import type { IChatContext, Task } from '../api/protocol';

export type CellAction = 'explain' | 'fix' | 'generate';

export interface ICellSnapshot {
  /** The notebook's path, relative to the server root. */
  path: string;
  cellId: string;
  /** 0-based position in the notebook. */
  index: number;
  cellType: string;
  source: string;
  outputs: readonly Record<string, unknown>[];
}

export interface ICellRequest {
  text: string;
  task: Task;
  context: IChatContext;
}

/** Longest cell source quoted in a question; the server sends the cell in full anyway. */
const MAX_QUOTE = 4000;
const MAX_TRACEBACK_LINES = 40;

export function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '');
}

/** The cell's error output as plain text (last lines of the traceback), or null. */
export function errorText(outputs: readonly Record<string, unknown>[]): string | null {
  const error = outputs.find(o => o.output_type === 'error');
  if (!error) {
    return null;
  }
  const name = typeof error.ename === 'string' ? error.ename : 'Error';
  const value = typeof error.evalue === 'string' ? error.evalue : '';
  const traceback = Array.isArray(error.traceback)
    ? error.traceback.filter((l): l is string => typeof l === 'string')
    : [];
  const lines = stripAnsi(traceback.join('\n')).split('\n');
  const tail = lines.slice(-MAX_TRACEBACK_LINES).join('\n').trim();
  const head = `${name}: ${stripAnsi(value)}`;
  return tail && !tail.endsWith(head.trim()) ? `${tail}\n${head}` : tail || head;
}

function fence(text: string, language = ''): string {
  const body = text.length > MAX_QUOTE ? `${text.slice(0, MAX_QUOTE)}\n…` : text;
  const ticks = body.includes('```') ? '````' : '```';
  return `${ticks}${language}\n${body}\n${ticks}`;
}

/** Whether an action makes sense for this cell (e.g. Fix needs an error). */
export function canRun(action: CellAction, cell: ICellSnapshot): boolean {
  switch (action) {
    case 'explain':
      return cell.source.trim().length > 0;
    case 'fix':
      return errorText(cell.outputs) !== null;
    case 'generate':
      return cell.source.trim().length > 0;
  }
}

export function cellRequest(action: CellAction, cell: ICellSnapshot): ICellRequest {
  const context: IChatContext = { notebook: cell.path, cell_id: cell.cellId };
  const where = `cell ${cell.index + 1} of ${cell.path}`;
  const language = cell.cellType === 'code' ? 'python' : '';
  switch (action) {
    case 'explain':
      return {
        task: 'chat',
        context,
        text: `Explain what ${where} does:\n\n${fence(cell.source, language)}`
      };
    case 'fix':
      return {
        task: 'agent',
        context,
        text:
          `Fix this error in ${where}, then run the cell again to check:\n\n` +
          fence(errorText(cell.outputs) ?? '')
      };
    case 'generate':
      return {
        task: 'agent',
        context,
        text:
          `Write the code this ${cell.cellType === 'markdown' ? 'text' : 'comment'} asks for ` +
          `and insert it as a new code cell right after ${where}:\n\n${fence(cell.source)}`
      };
  }
}
