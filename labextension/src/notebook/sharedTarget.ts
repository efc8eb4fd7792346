/**
 * Applies a patch to an open notebook's shared model as one undo step: the whole patch
 * runs in one transaction of the notebook document, with the undo manager's capture
 * window closed before and after, so JupyterLab's own notebook undo (Ctrl+Z / `Z` in
 * command mode) takes back exactly this patch — as does the Undo button of the chat
 * card, while the patch is still the latest change.
 */
import type { CellType, IPatch, IPatchCell } from '../api/protocol';
import { applyPatch, type IApplyOptions, type IPatchTarget, type PatchOutcome } from './patch';

/** The part of a shared cell (`@jupyter/ydoc`) this module uses. */
interface ISharedCellLike {
  readonly cell_type: string;
  getId(): string;
  getSource(): string;
  setSource(source: string): void;
}

/** The part of a shared notebook (`@jupyter/ydoc`) this module uses. */
export interface ISharedNotebookLike {
  readonly cells: readonly ISharedCellLike[];
  insertCell(
    index: number,
    cell: { id: string; cell_type: CellType; source: string; metadata: Record<string, never> }
  ): unknown;
  deleteCell(index: number): void;
  moveCell(from: number, to: number): void;
  transact(apply: () => void, undoable?: boolean): void;
  undo(): void;
  readonly undoManager?: { stopCapturing(): void; readonly undoStack: readonly unknown[] };
}

function cellType(value: string): CellType {
  return value === 'markdown' || value === 'raw' ? value : 'code';
}

class SharedTarget implements IPatchTarget {
  constructor(private readonly _nb: ISharedNotebookLike) {}

  cells(): readonly IPatchCell[] {
    return this._nb.cells.map(c => ({
      id: c.getId(),
      cell_type: cellType(c.cell_type),
      source: c.getSource()
    }));
  }

  insert(index: number, cell: IPatchCell): void {
    this._nb.insertCell(index, { ...cell, metadata: {} });
  }

  remove(index: number): void {
    this._nb.deleteCell(index);
  }

  setSource(index: number, source: string): void {
    this._nb.cells[index].setSource(source);
  }

  recreate(index: number, cell: IPatchCell): void {
    this._nb.deleteCell(index);
    this._nb.insertCell(index, { ...cell, metadata: {} });
  }

  move(from: number, to: number): void {
    this._nb.moveCell(from, to);
  }
}

/** An applied patch that may still be taken back. */
export interface IUndoHandle {
  /** True while this patch is the notebook's latest undoable change. */
  canUndo(): boolean;
  /** Takes the patch back; false when other changes came after it. */
  undo(): boolean;
}

export interface IApplied {
  outcome: PatchOutcome;
  undo: IUndoHandle | null;
}

export function applyToNotebook(
  nb: ISharedNotebookLike,
  patch: IPatch,
  options: IApplyOptions = {}
): IApplied {
  const manager = nb.undoManager;
  manager?.stopCapturing();
  const before = manager?.undoStack.length ?? 0;
  const outcome = applyPatch(new SharedTarget(nb), patch, apply => nb.transact(apply), options);
  manager?.stopCapturing();
  if (outcome.status !== 'applied' || !manager || manager.undoStack.length <= before) {
    return { outcome, undo: null }; // a conflict, or nothing left to change
  }
  const item = manager.undoStack[manager.undoStack.length - 1];
  const canUndo = (): boolean =>
    item !== undefined && manager.undoStack[manager.undoStack.length - 1] === item;
  return {
    outcome,
    undo: {
      canUndo,
      undo: () => {
        if (!canUndo()) {
          return false;
        }
        nb.undo();
        return true;
      }
    }
  };
}
