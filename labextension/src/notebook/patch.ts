/**
 * Cell-level notebook patches (docs/protocol.md, "Notebook patches"), applied to any
 * list of cells behind `IPatchTarget`: the open notebook's shared model in the browser,
 * a plain array in the tests and for the dry run.
 *
 * Same rules as the server: every op names its cell and, when it changes or removes
 * one, the source it expects — a mismatch is a conflict, never a silent overwrite —
 * and an op already applied is a no-op, so a patch applied twice is applied once.
 * A patch is checked in full on a copy first, so it is applied entirely or not at all.
 */
import type { CellType, IPatch, IPatchCell, PatchOp } from '../api/protocol';

export interface IPatchTarget {
  cells(): readonly IPatchCell[];
  insert(index: number, cell: IPatchCell): void;
  remove(index: number): void;
  setSource(index: number, source: string): void;
  /** Replaces the cell at `index` by a fresh one (changing the cell type). */
  recreate(index: number, cell: IPatchCell): void;
  /** Moves the cell at `from` so that it ends up at index `to`. */
  move(from: number, to: number): void;
}

/**
 * A conflict names the cell as the user sees it (position and first line), and, when a
 * cell changed under the assistant, what the notebook holds now (`theirs`) beside what
 * the assistant meant to write (`ours`, null for a delete): the card can show both and
 * offer to apply anyway.
 */
export interface IConflictedCell {
  cellId: string;
  theirs: string;
  ours: string | null;
}

export type PatchOutcome =
  | { status: 'applied' }
  | { status: 'conflict'; reason: string; cell?: IConflictedCell };

export interface IApplyOptions {
  /**
   * Write over cells changed since the assistant read them (the user chose "Apply
   * anyway" after seeing both versions). Cells that are gone are still a conflict.
   */
  force?: boolean;
}

class Conflict extends Error {
  constructor(
    message: string,
    readonly cell?: IConflictedCell
  ) {
    super(message);
  }
}

/** "cell 3 (df = load())": a cell as the user sees it, never by its id. */
export function cellName(cells: readonly IPatchCell[], index: number): string {
  const first = cells[index].source.split('\n').find(line => line.trim())?.trim() ?? '';
  const shown = first.length > 40 ? `${first.slice(0, 39)}…` : first;
  return shown ? `cell ${index + 1} (${shown})` : `cell ${index + 1}`;
}

function indexOf(target: IPatchTarget, cellId: string): number {
  const index = target.cells().findIndex(c => c.id === cellId);
  if (index < 0) {
    throw new Conflict('a cell it refers to is no longer in the notebook');
  }
  return index;
}

function changed(target: IPatchTarget, index: number, ours: string | null): Conflict {
  const cell = target.cells()[index];
  return new Conflict(`${cellName(target.cells(), index)} changed since the assistant read it`, {
    cellId: cell.id,
    theirs: cell.source,
    ours
  });
}

function positionAfter(target: IPatchTarget, afterId: string | null): number {
  return afterId === null ? 0 : indexOf(target, afterId) + 1;
}

function applyOp(target: IPatchTarget, op: PatchOp, force = false): void {
  switch (op.op) {
    case 'insert': {
      const existing = target.cells().find(c => c.id === op.cell.id);
      if (existing) {
        if (existing.source !== op.cell.source) {
          const at = target.cells().indexOf(existing);
          throw new Conflict(`${cellName(target.cells(), at)} is already there, with other code`);
        }
        return; // already applied
      }
      target.insert(positionAfter(target, op.after_id), { ...op.cell });
      return;
    }
    case 'replace': {
      const index = indexOf(target, op.cell_id);
      const cell = target.cells()[index];
      const wantType: CellType = op.cell_type ?? cell.cell_type;
      if (cell.source === op.source && cell.cell_type === wantType) {
        return; // already applied
      }
      if (cell.source !== op.expected_source && cell.source !== op.source && !force) {
        throw changed(target, index, op.source);
      }
      if (wantType !== cell.cell_type) {
        target.recreate(index, { id: cell.id, cell_type: wantType, source: op.source });
      } else {
        target.setSource(index, op.source);
      }
      return;
    }
    case 'delete': {
      const index = target.cells().findIndex(c => c.id === op.cell_id);
      if (index < 0) {
        return; // already applied
      }
      if (target.cells()[index].source !== op.expected_source && !force) {
        throw changed(target, index, null);
      }
      target.remove(index);
      return;
    }
    case 'move': {
      const from = indexOf(target, op.cell_id);
      const rest = target.cells().filter((_, i) => i !== from);
      const to = op.after_id === null ? 0 : rest.findIndex(c => c.id === op.after_id) + 1;
      if (op.after_id !== null && to === 0) {
        throw new Conflict('the cell to move it after is no longer in the notebook');
      }
      if (to !== from) {
        target.move(from, to);
      }
      return;
    }
  }
}

/** A list of cells in memory: the dry run, and the tests. */
export class ArrayTarget implements IPatchTarget {
  constructor(cells: readonly IPatchCell[]) {
    this._cells = cells.map(c => ({ ...c }));
  }

  cells(): readonly IPatchCell[] {
    return this._cells;
  }

  insert(index: number, cell: IPatchCell): void {
    this._cells.splice(index, 0, { ...cell });
  }

  remove(index: number): void {
    this._cells.splice(index, 1);
  }

  setSource(index: number, source: string): void {
    this._cells[index] = { ...this._cells[index], source };
  }

  recreate(index: number, cell: IPatchCell): void {
    this._cells[index] = { ...cell };
  }

  move(from: number, to: number): void {
    const [cell] = this._cells.splice(from, 1);
    this._cells.splice(to, 0, cell);
  }

  private readonly _cells: IPatchCell[];
}

/**
 * Applies `patch` to `target` all or nothing. `transact` wraps the real application
 * (one undo step on a notebook); it is not called when the dry run finds a conflict.
 */
export function applyPatch(
  target: IPatchTarget,
  patch: IPatch,
  transact: (apply: () => void) => void = apply => apply(),
  options: IApplyOptions = {}
): PatchOutcome {
  const force = options.force ?? false;
  try {
    const dry = new ArrayTarget(target.cells());
    for (const op of patch.ops) {
      applyOp(dry, op, force);
    }
  } catch (error) {
    if (error instanceof Conflict) {
      return error.cell
        ? { status: 'conflict', reason: error.message, cell: error.cell }
        : { status: 'conflict', reason: error.message };
    }
    throw error;
  }
  transact(() => {
    for (const op of patch.ops) {
      applyOp(target, op, force);
    }
  });
  return { status: 'applied' };
}

/**
 * Whether `cells` still hold `patch` as it was applied: its inserted cells are there,
 * its replaced cells have the new source, its deleted cells are gone, its moved cells
 * sit where it put them. False once the notebook's own undo (or the user) took it back.
 */
export function holdsPatch(
  cells: readonly Pick<IPatchCell, 'id' | 'source'>[],
  patch: IPatch
): boolean {
  return patch.ops.every(op => {
    switch (op.op) {
      case 'insert':
        return cells.some(c => c.id === op.cell.id);
      case 'replace':
        return cells.some(c => c.id === op.cell_id && c.source === op.source);
      case 'delete':
        return !cells.some(c => c.id === op.cell_id);
      case 'move': {
        const at = cells.findIndex(c => c.id === op.cell_id);
        return at >= 0 && (op.after_id === null ? at === 0 : cells[at - 1]?.id === op.after_id);
      }
    }
  });
}
