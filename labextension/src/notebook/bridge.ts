/**
 * The agent's hands in open notebooks. Declares to the server which notebooks this page
 * has open (`notebook_open` / `notebook_close`, again after every reconnect), and answers
 * the server's `notebook_patch` / `notebook_execute` requests for them: applies patches
 * to the open document (one undo step), runs cells through the notebook's own session,
 * and reports each outcome with `notebook_result`.
 *
 * A request whose tool call the user approved (or that policy let run by itself) is
 * carried out at once; any other request waits for the user's Apply / Reject in the chat.
 * Requests seen only in a replay are history: the server stopped waiting for them when
 * the old connection closed.
 */
import type { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import type { ChatSocket, IEventDelivery } from '../api/chatSocket';
import type {
  INotebookExecute,
  INotebookPatch,
  INotebookResultMessage,
  IPatch
} from '../api/protocol';
import { renderPatchDiff } from '../chat/diffView';
import type { Block, Transcript } from '../chat/transcript';
import { h } from '../ui/dom';
import { runCell } from './execute';
import { fitOutputs } from './outputs';
import { holdsPatch } from './patch';
import { switchToSandbox } from './sandbox';
import { applyToNotebook, type ISharedNotebookLike, type IUndoHandle } from './sharedTarget';

/** A cell as the user sees it: its position (from 1, as the prompts number cells). */
export interface ICellView {
  id: string;
  position: number;
  cellType: string;
  source: string;
}

/** An editor for code in a card (JupyterLab's CodeMirror), or a plain text box without. */
export interface ICodeField {
  readonly node: HTMLElement;
  dispose(): void;
}
export type CodeFieldFactory = (
  text: string,
  onChange: (text: string) => void,
  language: string
) => ICodeField;

/** What the chat's cards can ask of the bridge. */
export interface INotebookActions {
  confirm(requestId: string): void;
  reject(requestId: string, reason: string): void;
  undo(requestId: string): void;
  /** Takes back every patch these runs applied (a fix's attempts), newest first. */
  undoRuns?(runIds: readonly string[]): IUndoRunsOutcome;
  /**
   * Runs cells of an open notebook again, in the notebook's order, stopping at the first
   * error (after "Undo fix": the kernel is brought back in line with the cells).
   */
  rerun?(path: string, cellIds: readonly string[]): Promise<IRerunOutcome>;
  /** Apply a patch that conflicted, over the notebook's changes (the user saw both). */
  applyAnyway(requestId: string): void;
  /** Switch a notebook open here (null: the current one) to the sandboxed kernel. */
  switchToSandbox(path: string | null): Promise<void>;
  /** The cells of a notebook open here, in order; [] when it is not open. */
  cells(path: string): ICellView[];
  /** Scrolls the open notebook to a cell and flashes it; false when it is not there. */
  reveal(path: string, cellId: string): boolean;
  /**
   * Shows a proposed change inside the open notebook, under the cells it changes (or
   * where it inserts), while its card waits; returns how to take it away, or null when
   * the notebook is not open here.
   */
  preview?(patch: IPatch): (() => void) | null;
  /** Code editors for the approval card's Edit form; null: text boxes. */
  readonly codeField: CodeFieldFactory | null;
}

export interface IBridgeOptions {
  socket: ChatSocket;
  tracker: INotebookTracker;
  /** The transcript showing a conversation (to report on its requests), if any. */
  transcript(conversationId: string): Transcript | null;
  /** A request waits for the user: show its conversation. */
  attention(conversationId: string): void;
  codeField?: CodeFieldFactory | null;
}

/** What running cells again came to: how many ran, and the first that failed. */
export interface IRerunOutcome {
  ran: number;
  /** "cell 2: NameError: name 'totl' is not defined", or null when all ran. */
  failed: string | null;
  /** Why nothing ran (the notebook is not open here, no kernel), or null. */
  skipped: string | null;
}

/** What "Undo fix" did: patches undone, and the notebooks where one could not be. */
export interface IUndoRunsOutcome {
  undone: number;
  failed: string[];
}

/** An applied patch: how to take it back, and what the card was last told about it. */
interface IAppliedPatch {
  request: INotebookPatch;
  undo: IUndoHandle | null;
  held: boolean;
  undoable: boolean;
}

type Request = INotebookPatch | INotebookExecute;

/** Share of the frame size the outputs of a run may use. */
const OUTPUT_SHARE = 0.75;
/** How long a revealed cell stays highlighted (the CSS animation's length). */
const FLASH_MS = 2000;

export class NotebookBridge implements INotebookActions {
  constructor(options: IBridgeOptions) {
    this._options = options;
    const { socket, tracker } = options;
    tracker.forEach(panel => this._track(panel));
    tracker.widgetAdded.connect((_, panel) => this._track(panel));
    socket.opened.connect(() => {
      for (const path of this._open.keys()) {
        this._send({ type: 'notebook_open', path });
      }
    });
    socket.events.connect((_, delivery) => this._onEvent(delivery));
  }

  confirm(requestId: string): void {
    const request = this._waiting.get(requestId);
    if (request) {
      this._waiting.delete(requestId);
      void this._carryOut(request);
    }
  }

  reject(requestId: string, reason: string): void {
    const request = this._waiting.get(requestId);
    if (!request) {
      return;
    }
    this._waiting.delete(requestId);
    this._report(request, { status: 'rejected', reason: reason || 'the user rejected it' });
    this._transcriptOf(request)?.updateRequest(requestId, { state: 'rejected', reason });
  }

  applyAnyway(requestId: string): void {
    const request = this._conflicted.get(requestId);
    const panel = request ? this._panel(request.path) : null;
    if (!request || !panel) {
      return;
    }
    const model = panel.context.model.sharedModel as unknown as ISharedNotebookLike;
    const { outcome, undo } = applyToNotebook(model, request.patch, { force: true });
    const transcript = this._transcriptOf(request);
    if (outcome.status !== 'applied') {
      transcript?.updateRequest(requestId, { reason: outcome.reason, conflict: null });
      return;
    }
    // The run was told it did not apply (and may have moved on): this is the user's own
    // edit now, undoable like any applied change, and the card says so.
    this._conflicted.delete(requestId);
    this._applied.set(requestId, { request, undo, held: true, undoable: !!undo });
    transcript?.updateRequest(requestId, {
      state: 'applied',
      undoable: !!undo,
      held: true,
      forced: true,
      conflict: null,
      reason: null
    });
    const target = patchTarget(request.patch);
    if (target) {
      this.reveal(request.path, target);
    }
    void this._save(panel);
  }

  /**
   * Takes back every patch these runs applied here (a fix's attempts), newest first, and
   * saves. Returns how many were undone and why any could not be.
   */
  async rerun(path: string, cellIds: readonly string[]): Promise<IRerunOutcome> {
    const panel = this._panel(path);
    if (!panel) {
      return { ran: 0, failed: null, skipped: `${path} is not open in this page` };
    }
    const wanted = new Set(cellIds);
    const inOrder = panel.content.widgets.filter(w => wanted.has(w.model.id) && w.model.type === 'code');
    let ran = 0;
    for (const cell of inOrder) {
      const position = panel.content.widgets.indexOf(cell) + 1;
      const result = await runCell(panel, cell.model.id);
      if (result.reason) {
        return { ran, failed: null, skipped: result.reason };
      }
      ran++;
      if (result.status === 'error') {
        const error = result.outputs.find(o => o.output_type === 'error');
        const what = error ? `${String(error.ename)}: ${String(error.evalue)}` : 'an error';
        return { ran, failed: `cell ${position}: ${what}`, skipped: null };
      }
    }
    return { ran, failed: null, skipped: null };
  }

  undoRuns(runIds: readonly string[]): IUndoRunsOutcome {
    const runs = new Set(runIds);
    const mine = [...this._applied.entries()].filter(([, a]) => runs.has(a.request.run_id));
    const outcome: IUndoRunsOutcome = { undone: 0, failed: [] };
    const panels = new Set<NotebookPanel>();
    for (const [requestId, applied] of mine.reverse()) {
      const { request } = applied;
      const done = applied.undo?.undo() ?? false;
      if (done) {
        outcome.undone++;
        this._applied.delete(requestId);
        const panel = this._panel(request.path);
        if (panel) {
          panels.add(panel);
        }
      } else {
        outcome.failed.push(request.path);
      }
      this._transcriptOf(request)?.updateRequest(requestId, {
        undoable: false,
        reason: done ? 'undone' : 'the notebook changed since: use Edit › Undo in the notebook'
      });
    }
    for (const panel of panels) {
      void this._save(panel);
    }
    return outcome;
  }

  undo(requestId: string): void {
    const applied = this._applied.get(requestId);
    if (!applied?.undo) {
      return;
    }
    const { request } = applied;
    const done = applied.undo.undo();
    this._applied.delete(requestId);
    this._transcriptOf(request)?.updateRequest(requestId, {
      undoable: false,
      reason: done ? 'undone' : 'the notebook changed since: use Edit › Undo in the notebook'
    });
    const panel = this._panel(request.path);
    if (done && panel) {
      // As Apply does: the agent reads the file, which must no longer have the change.
      void this._save(panel);
    }
  }

  cells(path: string): ICellView[] {
    const panel = this._panel(path);
    if (!panel?.model) {
      return [];
    }
    return Array.from(panel.model.cells, (cell, i) => ({
      id: cell.id,
      position: i + 1,
      cellType: cell.type,
      source: cell.sharedModel.getSource()
    }));
  }

  reveal(path: string, cellId: string): boolean {
    const notebook = this._panel(path)?.content;
    const cell = notebook?.widgets.find(w => w.model.id === cellId);
    if (!notebook || !cell) {
      return false;
    }
    void notebook.scrollToCell(cell, 'center').catch(() => undefined);
    const node = cell.node;
    node.classList.remove('aiide-Flash');
    void node.offsetWidth; // restarts the animation of a cell flashed a moment ago
    node.classList.add('aiide-Flash');
    window.setTimeout(() => node.classList.remove('aiide-Flash'), FLASH_MS);
    return true;
  }

  preview(patch: IPatch): (() => void) | null {
    const notebook = this._panel(patch.path)?.content;
    if (!notebook) {
      return null;
    }
    const shown: HTMLElement[] = [];
    for (const op of patch.ops) {
      // Under the changed cell, or under the cell a new one goes after (at the top: above
      // the first cell).
      const anchorId = op.op === 'insert' || op.op === 'move' ? op.after_id : op.cell_id;
      const cell = anchorId === null ? notebook.widgets[0] : notebook.widgets.find(w => w.model.id === anchorId);
      if (!cell) {
        continue;
      }
      const node = h(
        'div',
        { class: 'aiide-NotebookDiff', role: 'note', 'aria-label': 'Change waiting for your approval in the chat' },
        h('div', { class: 'aiide-NotebookDiff-title' }, 'Waiting for your approval in the chat:'),
        renderPatchDiff({ path: patch.path, ops: [op] })
      );
      const input = cell.node.querySelector('.jp-Cell-inputWrapper');
      if (anchorId === null) {
        cell.node.insertAdjacentElement('beforebegin', node);
      } else if (input) {
        input.insertAdjacentElement('afterend', node);
      } else {
        cell.node.appendChild(node);
      }
      shown.push(node);
    }
    return shown.length ? () => shown.forEach(node => node.remove()) : null;
  }

  get codeField(): CodeFieldFactory | null {
    return this._options.codeField ?? null;
  }

  async switchToSandbox(path: string | null): Promise<void> {
    const tracker = this._options.tracker;
    const panel = path ? this._panel(path) : tracker.currentWidget;
    if (!panel) {
      throw new Error(`${path ?? 'the notebook'} is not open in this browser: open it first`);
    }
    await switchToSandbox(panel.sessionContext);
  }

  // -- open notebooks -----------------------------------------------------------------

  private _track(panel: NotebookPanel): void {
    let path: string | null = null;
    // The notebook's own undo (or the user) may take an applied change back: its card
    // says so instead of offering an Undo that would refuse.
    panel.context.model.contentChanged.connect(() => this._recheck(panel));
    const update = (): void => {
      const now = panel.isDisposed ? null : panel.context.path;
      if (now === path) {
        return;
      }
      if (path !== null) {
        this._release(path);
      }
      path = now;
      if (path !== null) {
        this._hold(path);
      }
    };
    void panel.context.ready.then(update, () => undefined);
    panel.context.pathChanged.connect(update);
    panel.disposed.connect(update);
  }

  private _hold(path: string): void {
    const count = this._open.get(path) ?? 0;
    this._open.set(path, count + 1);
    if (count === 0) {
      this._send({ type: 'notebook_open', path });
    }
  }

  private _release(path: string): void {
    const count = (this._open.get(path) ?? 1) - 1;
    if (count > 0) {
      this._open.set(path, count);
      return;
    }
    this._open.delete(path);
    this._send({ type: 'notebook_close', path });
  }

  private _recheck(panel: NotebookPanel): void {
    if (this._applied.size === 0 || this._rechecking.has(panel)) {
      return;
    }
    this._rechecking.add(panel); // once per burst of changes (a patch is many)
    queueMicrotask(() => {
      this._rechecking.delete(panel);
      if (panel.isDisposed) {
        return;
      }
      const path = panel.context.path;
      const cells = this.cells(path);
      for (const applied of this._applied.values()) {
        if (applied.request.path !== path) {
          continue;
        }
        const held = holdsPatch(cells, applied.request.patch);
        const undoable = held && (applied.undo?.canUndo() ?? false);
        if (held !== applied.held || undoable !== applied.undoable) {
          applied.held = held;
          applied.undoable = undoable;
          this._transcriptOf(applied.request)?.updateRequest(applied.request.request_id, {
            held,
            undoable
          });
        }
      }
    });
  }

  private _panel(path: string): NotebookPanel | null {
    return this._options.tracker.find(p => p.context.path === path) ?? null;
  }

  // -- requests -------------------------------------------------------------------------

  private _onEvent({ event, replay }: IEventDelivery): void {
    if (replay || (event.type !== 'notebook_patch' && event.type !== 'notebook_execute')) {
      return;
    }
    if (!this._open.has(event.path)) {
      return; // another page of this user holds the notebook
    }
    const block = this._callOf(event);
    // A fix's own cell runs (its verify step): the user asked for them by starting it.
    const fixRun = event.type === 'notebook_execute' && !!this._transcriptOf(event)?.isFix(event.run_id);
    const approved =
      fixRun ||
      (block?.kind === 'call' &&
        (block.decision === 'auto' || block.approval?.resolution?.decision === 'approve'));
    if (approved) {
      void this._carryOut(event);
    } else {
      this._waiting.set(event.request_id, event);
      this._transcriptOf(event)?.updateRequest(event.request_id, { state: 'confirm' });
      this._options.attention(event.conversation_id);
    }
  }

  private async _carryOut(request: Request): Promise<void> {
    const transcript = this._transcriptOf(request);
    const panel = this._panel(request.path);
    if (!panel) {
      const reason = `${request.path} is no longer open in this browser`;
      this._report(request, { status: 'conflict', reason });
      transcript?.updateRequest(request.request_id, { state: 'conflict', reason });
      return;
    }
    if (request.type === 'notebook_patch') {
      const model = panel.context.model.sharedModel as unknown as ISharedNotebookLike;
      const { outcome, undo } = applyToNotebook(model, request.patch);
      if (outcome.status === 'applied') {
        this._applied.set(request.request_id, { request, undo, held: true, undoable: !!undo });
        transcript?.updateRequest(request.request_id, {
          state: 'applied',
          undoable: !!undo,
          held: true
        });
        const target = patchTarget(request.patch);
        if (target) {
          this.reveal(request.path, target);
        }
        // Saved before the server hears of it: what it reads next (a fix loop's check of
        // what changed, the agent's next read) is the notebook with the change.
        await this._save(panel);
        this._report(request, { status: 'applied' });
      } else {
        this._report(request, { status: 'conflict', reason: outcome.reason });
        this._conflicted.set(request.request_id, request);
        transcript?.updateRequest(request.request_id, {
          state: 'conflict',
          reason: outcome.reason,
          conflict: outcome.cell ?? null
        });
        if (outcome.cell) {
          this.reveal(request.path, outcome.cell.cellId);
        }
      }
      return;
    }
    transcript?.updateRequest(request.request_id, { state: 'pending' });
    this.reveal(request.path, request.cell_id);
    try {
      const result = await runCell(panel, request.cell_id, request.kernel_id);
      const limit = (this._options.socket.hello?.max_message_bytes ?? 262_144) * OUTPUT_SHARE;
      this._report(request, {
        status: result.status,
        outputs: fitOutputs(result.outputs, limit),
        ...(result.reason ? { reason: result.reason } : {})
      });
      transcript?.updateRequest(request.request_id, {
        state: result.status,
        reason: result.reason
      });
      await this._save(panel);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this._report(request, { status: 'error', outputs: [], reason });
      transcript?.updateRequest(request.request_id, { state: 'error', reason });
    }
  }

  /**
   * The agent reads notebooks from disk: save so it sees what the user sees. Saves of one
   * notebook go one after the other: a fix loop runs cells back to back, and two saves
   * at once make JupyterLab think the file changed on disk behind its back.
   */
  private _save(panel: NotebookPanel): Promise<void> {
    const previous = this._saving.get(panel) ?? Promise.resolve();
    const next = previous.then(async () => {
      try {
        await panel.context.save();
      } catch (error) {
        console.warn('aiide: could not save the notebook after an agent edit', error);
      }
    });
    this._saving.set(panel, next);
    void next.then(() => {
      if (this._saving.get(panel) === next) {
        this._saving.delete(panel);
      }
    });
    return next;
  }

  private _callOf(request: Request): Block | undefined {
    return this._transcriptOf(request)?.blocks.find(
      b => b.kind === 'call' && b.request?.requestId === request.request_id
    );
  }

  private _transcriptOf(request: Request): Transcript | null {
    return this._options.transcript(request.conversation_id);
  }

  private _report(
    request: Request,
    result: Pick<INotebookResultMessage, 'status'> &
      Partial<Pick<INotebookResultMessage, 'reason' | 'outputs'>>
  ): void {
    this._send({
      type: 'notebook_result',
      conversation_id: request.conversation_id,
      run_id: request.run_id,
      request_id: request.request_id,
      ...result
    });
  }

  private _send(message: Parameters<ChatSocket['send']>[0]): void {
    try {
      this._options.socket.send(message);
    } catch {
      // Not connected: open notebooks are declared again on the next hello, and the
      // server fails a request whose front end went away (frontend_gone).
    }
  }

  private readonly _options: IBridgeOptions;
  private readonly _open = new Map<string, number>();
  private readonly _waiting = new Map<string, Request>();
  private readonly _applied = new Map<string, IAppliedPatch>();
  /** Patches that met a conflict, kept so the user can still apply them anyway. */
  private readonly _conflicted = new Map<string, INotebookPatch>();
  private readonly _rechecking = new Set<NotebookPanel>();
  private readonly _saving = new Map<NotebookPanel, Promise<void>>();
}

/** The cell a patch is about (its first op's), to show after applying it. */
export function patchTarget(patch: IPatch): string | null {
  const op = patch.ops[0];
  if (!op) {
    return null;
  }
  return op.op === 'insert' ? op.cell.id : op.op === 'delete' ? null : op.cell_id;
}
