/**
 * Rows of an inline diff for each op of a notebook patch, computed with jsdiff
 * (`diff`): what the approval card shows. Long unchanged stretches fold to a marker.
 */
import { diffLines } from 'diff';

import type { IPatch, PatchOp } from '../api/protocol';
import { noNotebook, type CellNamer } from './describeCall';

export type RowKind = 'add' | 'del' | 'ctx' | 'fold';

export interface IDiffRow {
  kind: RowKind;
  text: string;
}

export interface IOpDiff {
  title: string;
  rows: IDiffRow[];
}

/** Unchanged lines kept around each change. */
const CONTEXT = 3;

function lines(text: string): string[] {
  const parts = text.split('\n');
  if (parts.length > 1 && parts[parts.length - 1] === '') {
    parts.pop();
  }
  return parts;
}

/** Line diff of two sources, with unchanged runs folded beyond `CONTEXT` lines. */
export function diffRows(before: string, after: string): IDiffRow[] {
  const rows: IDiffRow[] = [];
  for (const change of diffLines(before, after)) {
    const kind: RowKind = change.added ? 'add' : change.removed ? 'del' : 'ctx';
    for (const text of lines(change.value)) {
      rows.push({ kind, text });
    }
  }
  return fold(rows);
}

function fold(rows: IDiffRow[]): IDiffRow[] {
  const near = rows.map(() => false);
  rows.forEach((row, i) => {
    if (row.kind !== 'ctx') {
      for (let j = Math.max(0, i - CONTEXT); j <= Math.min(rows.length - 1, i + CONTEXT); j++) {
        near[j] = true;
      }
    }
  });
  const out: IDiffRow[] = [];
  let hidden = 0;
  rows.forEach((row, i) => {
    if (row.kind === 'ctx' && !near[i]) {
      hidden += 1;
      return;
    }
    if (hidden) {
      out.push({ kind: 'fold', text: `${hidden} unchanged line${hidden > 1 ? 's' : ''}` });
      hidden = 0;
    }
    out.push(row);
  });
  if (hidden) {
    out.push({ kind: 'fold', text: `${hidden} unchanged line${hidden > 1 ? 's' : ''}` });
  }
  return out;
}

function where(afterId: string | null, names: CellNamer): string {
  return afterId === null ? 'at the top' : `after ${names(afterId)}`;
}

/** An op's title names cells as the user sees them (`names`), never by id. */
export function opDiff(op: PatchOp, names: CellNamer = noNotebook): IOpDiff {
  switch (op.op) {
    case 'insert':
      return {
        title: `New ${op.cell.cell_type} cell ${where(op.after_id, names)}`,
        rows: diffRows('', op.cell.source)
      };
    case 'replace':
      return {
        title: `Change ${names(op.cell_id, op.expected_source)}${op.cell_type ? ` (to ${op.cell_type})` : ''}`,
        rows: diffRows(op.expected_source, op.source)
      };
    case 'delete':
      return {
        title: `Delete ${names(op.cell_id, op.expected_source)}`,
        rows: diffRows(op.expected_source, '')
      };
    case 'move':
      return { title: `Move ${names(op.cell_id)} ${where(op.after_id, names)}`, rows: [] };
  }
}

export function patchDiff(patch: IPatch, names: CellNamer = noNotebook): IOpDiff[] {
  return patch.ops.map(op => opDiff(op, names));
}
