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
  INotebookResultMessage
} from '../api/protocol';
import type { Block, Transcript } from '../chat/transcript';
import { runCell } from './execute';
import { fitOutputs } from './outputs';
import { switchToSandbox } from './sandbox';
import { applyToNotebook, type ISharedNotebookLike, type IUndoHandle } from './sharedTarget';

/** What the chat's cards can ask of the bridge. */
export interface INotebookActions {
  confirm(requestId: string): void;
  reject(requestId: string, reason: string): void;
  undo(requestId: string): void;
  /** Switch a notebook open here (null: the current one) to the sandboxed kernel. */
  switchToSandbox(path: string | null): Promise<void>;
}

export interface IBridgeOptions {
  socket: ChatSocket;
  tracker: INotebookTracker;
  /** The transcript showing a conversation (to report on its requests), if any. */
  transcript(conversationId: string): Transcript | null;
  /** A request waits for the user: show its conversation. */
  attention(conversationId: string): void;
}

type Request = INotebookPatch | INotebookExecute;

/** Share of the frame size the outputs of a run may use. */
const OUTPUT_SHARE = 0.75;

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

  undo(requestId: string): void {
    const handle = this._undo.get(requestId);
    const request = this._applied.get(requestId);
    if (!handle || !request) {
      return;
    }
    const done = handle.undo();
    this._undo.delete(requestId);
    this._transcriptOf(request)?.updateRequest(requestId, {
      undoable: false,
      reason: done ? 'undone' : 'the notebook changed since: use Edit › Undo in the notebook'
    });
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
    const approved =
      block?.kind === 'call' &&
      (block.decision === 'auto' || block.approval?.resolution?.decision === 'approve');
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
        this._report(request, { status: 'applied' });
        if (undo) {
          this._undo.set(request.request_id, undo);
          this._applied.set(request.request_id, request);
        }
        transcript?.updateRequest(request.request_id, { state: 'applied', undoable: !!undo });
        await this._save(panel);
      } else {
        this._report(request, { status: 'conflict', reason: outcome.reason });
        transcript?.updateRequest(request.request_id, {
          state: 'conflict',
          reason: outcome.reason
        });
      }
      return;
    }
    transcript?.updateRequest(request.request_id, { state: 'pending' });
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

  /** The agent reads notebooks from disk: save so it sees what the user sees. */
  private async _save(panel: NotebookPanel): Promise<void> {
    try {
      await panel.context.save();
    } catch (error) {
      console.warn('aiide: could not save the notebook after an agent edit', error);
    }
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
  private readonly _undo = new Map<string, IUndoHandle>();
  private readonly _applied = new Map<string, Request>();
}
