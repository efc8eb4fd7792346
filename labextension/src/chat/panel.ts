/**
 * The chat sidebar: header, banner, conversation list, transcript and chat box, wired
 * to the session. Turns slash commands and mentions into `chat` messages with the
 * active notebook's context; sends the last question again (regenerate, retry).
 * Activating the panel (its sidebar tab) puts the caret in the chat box; Escape hands
 * the keyboard back to the document in the main area.
 */
import type { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Panel, type Widget } from '@lumino/widgets';

import type { IChatContext, Mention, Task } from '../api/protocol';
import type { ICitationLinks } from '../knowledge/citations';
import type { JobTracker } from '../knowledge/progress';
import { KnowledgeProgressView } from '../knowledge/progressView';
import type { INotebookActions } from '../notebook/bridge';
import type { ActiveContext } from './activeContext';
import { Banner } from './banner';
import type { ICodeActions } from './codeActions';
import type { ILearnOutcome } from './learn';
import { Composer } from './composer';
import { ConversationList } from './conversationList';
import { ChatHeader } from './header';
import type { MentionSource } from './mentionSource';
import type { ModelDirectory } from './modelDirectory';
import { OutsideStrip } from './outsideStrip';
import type { ChatSession } from './session';
import { parseSlash, SLASH_COMMANDS } from './slash';
import type { TitleStore } from './titles';
import type { Transcript } from './transcript';
import { TranscriptView } from './transcriptView';
import type { ILastTurn } from './turns';

type Message = Parameters<Widget['processMessage']>[0];

/** What a question was sent with, to send it again as it was. */
interface ISent {
  text: string;
  task: Task;
  context: IChatContext;
}

export interface IChatPreferences {
  model: string | null;
  task: Task;
  enterToSend: boolean;
  saveBeforeAsking: boolean;
}

export interface IChatPanelOptions {
  session: ChatSession;
  notebooks: INotebookActions;
  rendermime: IRenderMimeRegistry;
  codeActions: ICodeActions;
  active: ActiveContext;
  mentions: MentionSource;
  titles: TitleStore;
  models: ModelDirectory;
  preferences(): IChatPreferences;
  setModel(name: string | null): void;
  learn(path: string): Promise<ILearnOutcome>;
  /** Gives the keyboard back to the document in the main area (Escape). */
  leave(): void;
  /** Indexing jobs, for the progress bar above the chat box. */
  learning: JobTracker;
  /** Opens cited files; null: citations are not links. */
  citations: ICitationLinks | null;
}

export const CHAT_PANEL_ID = 'aiide-chat';

export class ChatPanel extends Panel {
  constructor(options: IChatPanelOptions) {
    super();
    this._o = options;
    const { session } = options;
    this.id = CHAT_PANEL_ID;
    this.addClass('aiide-Chat');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'AI assistant');

    this._header = new ChatHeader({
      toggleList: () => this._toggleList(),
      newChat: () => {
        session.startNew();
        this._composer.focusInput();
      },
      pickModel: name => options.setModel(name),
      retry: () => session.socket.reconnectNow()
    });
    this._banner = new Banner({
      retry: () => session.socket.reconnectNow(),
      recheck: () => void options.models.refresh()
    });
    this._outside = new OutsideStrip(session);
    this._list = new ConversationList(session, options.titles, () => this._toggleList(false));
    this._list.hide();
    this._view = new TranscriptView({
      rendermime: options.rendermime,
      codeActions: options.codeActions,
      calls: {
        approve: (block, edited) =>
          this._decide(t =>
            session.decide(t, block.runId, block.callId, {
              decision: 'approve',
              ...(edited ? { arguments: edited } : {})
            })
          ),
        reject: (block, reason) =>
          this._decide(t =>
            session.decide(t, block.runId, block.callId, {
              decision: 'reject',
              ...(reason ? { reason } : {})
            })
          ),
        confirm: id => options.notebooks.confirm(id),
        refuse: (id, reason) => options.notebooks.reject(id, reason),
        undo: id => options.notebooks.undo(id),
        applyAnyway: id => options.notebooks.applyAnyway(id),
        switchToSandbox: path => options.notebooks.switchToSandbox(path),
        notebooks: options.notebooks
      },
      citations: options.citations,
      editQuestion: text => this._composer.setText(text),
      resend: turn => void this._resend(turn),
      fix: {
        cells: path => options.notebooks.cells(path),
        undo: end => this._undoFix(end)
      }
    });
    this._learning = new KnowledgeProgressView(options.learning);
    this._composer = new Composer({
      enterToSend: () => options.preferences().enterToSend,
      candidates: query => options.mentions.candidates(query),
      send: (text, task, mentions) => void this._send(text, task, mentions),
      stop: () => session.stop(session.current),
      blocked: () => this._blocked()
    });
    this._composer.task = options.preferences().task;
    for (const w of [
      this._header,
      this._banner,
      this._outside,
      this._list,
      this._view,
      this._learning,
      this._composer
    ]) {
      this.addWidget(w);
    }

    session.currentChanged.connect(this._onCurrent, this);
    session.conversationsChanged.connect(this._drawTitle, this);
    session.socket.statusChanged.connect(this._drawConnection, this);
    options.titles.changed.connect(this._drawTitle, this);
    options.models.changed.connect(this._drawModels, this);
    options.active.changed.connect(this._drawContext, this);
    this._onCurrent(session, session.current);
    this._drawConnection();
    this._drawModels();
    this._drawContext();
    this.node.addEventListener('keydown', this._onKey);
  }

  /** Sends a question for another plugin (a cell action), with its own context. */
  async ask(text: string, task: Task, context: IChatContext): Promise<void> {
    await this._send(text, task, [], context);
  }

  /** Starts the fix loop on a notebook cell's error (null: the notebook's first error). */
  async fix(path: string, cellId: string | null): Promise<void> {
    const o = this._o;
    if (o.preferences().saveBeforeAsking) {
      await o.active.save();
    }
    const cells = o.notebooks.cells(path);
    const position = cellId ? (cells.find(c => c.id === cellId)?.position ?? null) : null;
    await o.session.fix(path, cellId, position, o.preferences().model);
  }

  /** "Undo fix": every attempt's applied change, newest first; the kernel is then stale. */
  private _undoFix(end: {
    runId: string;
    runIds: readonly string[];
    reran: readonly string[];
    path: string;
  }): void {
    const transcript = this._o.session.current;
    const outcome = this._o.notebooks.undoRuns?.(end.runIds) ?? { undone: 0, failed: [] };
    if (outcome.failed.length || outcome.undone === 0) {
      transcript.fixUndone(
        end.runId,
        false,
        outcome.undone === 0
          ? `Nothing to undo here: the changes were made in another page or the notebook changed since. Use Edit › Undo in ${end.path}.`
          : `${outcome.undone} change(s) undone; the rest changed since: use Edit › Undo in ${end.path}.`
      );
      return;
    }
    const undone = `Undone: ${outcome.undone} change${outcome.undone === 1 ? '' : 's'} taken back.`;
    const stale =
      'The kernel still holds what the fixed cells defined: re-run the notebook ' +
      '(Run › Restart Kernel and Run All Cells) to bring it in line.';
    const notebooks = this._o.notebooks;
    if (!notebooks.rerun || !end.reran.length) {
      transcript.fixUndone(end.runId, true, `${undone} ${stale}`);
      return;
    }
    // The kernel ran the fixed cells: run them again as they are now, so it matches them.
    transcript.fixUndone(end.runId, true, `${undone} Running the cells the fix ran again…`);
    void notebooks.rerun(end.path, end.reran).then(
      ran => {
        const note = ran.skipped
          ? `${undone} ${stale} (${ran.skipped})`
          : ran.failed
            ? `${undone} The kernel ran the cells again: ${ran.failed}, as before the fix.`
            : `${undone} The kernel ran the ${ran.ran} cell${ran.ran === 1 ? '' : 's'} the fix ran again.`;
        transcript.fixUndone(end.runId, true, note);
      },
      () => transcript.fixUndone(end.runId, true, `${undone} ${stale}`)
    );
  }

  focusInput(): void {
    this._composer.focusInput();
  }

  /** The model picker follows the settings. */
  preferencesChanged(): void {
    this._drawModels();
  }

  override dispose(): void {
    const { session, titles, models, active } = this._o;
    session.currentChanged.disconnect(this._onCurrent, this);
    session.conversationsChanged.disconnect(this._drawTitle, this);
    session.socket.statusChanged.disconnect(this._drawConnection, this);
    titles.changed.disconnect(this._drawTitle, this);
    models.changed.disconnect(this._drawModels, this);
    active.changed.disconnect(this._drawContext, this);
    this._transcript?.changed.disconnect(this._drawBusy, this);
    this.node.removeEventListener('keydown', this._onKey);
    super.dispose();
  }

  /** The sidebar tab (or the open command) shows the chat: typing goes to the box. */
  protected override onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    this._composer.focusInput();
  }

  private readonly _onKey = (event: KeyboardEvent): void => {
    // The chat box's popup handles its own Escape (and stops it); in a card's Edit form
    // (a code editor) Escape stays with the form, whose edit is not done.
    const inForm = event.target instanceof Element && event.target.closest('.aiide-Call') !== null;
    if (event.key === 'Escape' && !event.defaultPrevented && !inForm && !event.shiftKey && !event.ctrlKey) {
      event.preventDefault();
      this._o.leave();
    }
  };

  private async _send(
    text: string,
    task: Task,
    mentions: Mention[],
    given?: IChatContext
  ): Promise<void> {
    const o = this._o;
    const slash = parseSlash(text);
    if (slash.kind === 'unknown') {
      this._composer.setText(text);
      this._composer.setNote(
        `Unknown command /${slash.name}. Try ${SLASH_COMMANDS.map(c => `/${c.name}`).join(', ')}.`
      );
      return;
    }
    if (slash.kind === 'command' && slash.command.name === 'fix') {
      const context = given ?? o.active.context();
      if (context.notebook) {
        await this.fix(context.notebook, context.cell_id ?? null);
        return;
      }
      this._composer.setText(text);
      this._composer.setNote('/fix works on a notebook: open one and pick the cell with the error.');
      return;
    }
    if (slash.kind === 'command' && slash.command.task === null) {
      // Said in the conversation, where it stays readable, not beside Send.
      const transcript = o.session.current;
      const outcome = await o.learn(slash.rest);
      transcript.addReport(outcome.text, outcome.failed ? 'error' : 'info', outcome.items);
      return;
    }
    const message = slash.kind === 'command' ? slash.command.expand(slash.rest) : text;
    const mode = slash.kind === 'command' && slash.command.task ? slash.command.task : task;
    const context = given ?? o.active.context();
    if (mentions.length) {
      context.mentions = mentions;
    }
    await this._ask({ text: message, task: mode, context });
  }

  private async _ask(sent: ISent): Promise<void> {
    const o = this._o;
    if (o.preferences().saveBeforeAsking) {
      await o.active.save();
    }
    this._sent.set(o.session.current, sent);
    await o.session.ask(sent.text, {
      task: sent.task,
      model: o.preferences().model,
      context: sent.context
    });
  }

  /**
   * Regenerate / Retry: the last question again, as a new turn of the conversation
   * (the protocol has no "replace the last turn"; the model sees the first answer
   * too, which is what a retry after a failure wants anyway). Sent as it was sent
   * from this page, mentions included; for a conversation reopened from history, its
   * text and mode with the context of now.
   */
  private async _resend(turn: ILastTurn): Promise<void> {
    const sent = this._sent.get(this._o.session.current);
    await this._ask(
      sent && sent.text === turn.question
        ? sent
        : { text: turn.question, task: turn.task, context: this._o.active.context() }
    );
  }

  /**
   * Enter while a run is going. Mature assistants (Copilot Chat, Cursor, jupyter-ai)
   * take no new message while a run is going; they keep it in the box. While a tool
   * call waits for approval the run is stuck on the user's decision, which a message
   * cannot give: queuing one would leave the card unanswered and the user waiting
   * for a reply that cannot come. So nothing is sent; the note says why and the card
   * that waits is scrolled into view and flashed.
   */
  private _blocked(): void {
    const run = this._transcript?.activeRun;
    if (run?.state === 'awaiting_approval') {
      this._composer.setNote(
        'Not sent: the assistant waits for your answer to the action above. Approve or ' +
          'reject it first; your message stays here.'
      );
      this._view.revealPending();
    } else {
      this._composer.setNote(
        'Not sent: the assistant is still answering. Send again when it is done, or Stop ' +
          'it; your message stays here.'
      );
    }
  }

  private _decide(send: (t: Transcript) => string | null): boolean {
    return this._transcript !== null && send(this._transcript) !== null;
  }

  private _toggleList(open = this._list.isHidden): void {
    this._list.setHidden(!open);
    this._header.setListOpen(open);
    if (open) {
      this._list.render();
      void this._o.session.refresh();
      this._list.focusSearch();
    }
  }

  private _onCurrent(_: ChatSession, transcript: Transcript): void {
    this._transcript?.changed.disconnect(this._drawBusy, this);
    this._transcript = transcript;
    transcript.changed.connect(this._drawBusy, this);
    this._view.setTranscript(transcript);
    this._drawBusy();
    this._drawTitle();
  }

  private _drawBusy(): void {
    this._composer.setBusy(!!(this._transcript?.activeRun || this._transcript?.activeFix));
    this._drawTitle();
  }

  private _drawTitle(): void {
    const id = this._transcript?.id ?? null;
    const summary = id ? this._o.session.conversations.find(c => c.id === id) : undefined;
    const fallback = summary?.title || (id ? 'Conversation' : 'New conversation');
    this._header.setTitle(id ? this._o.titles.title(id, fallback) : fallback);
  }

  private _drawConnection(): void {
    const status = this._o.session.socket.status;
    this._header.setConnection(status);
    this._composer.setConnection(status.state);
    this._drawBanner();
  }

  private _drawModels(): void {
    const { models } = this._o;
    this._header.setModels(models.models, this._o.preferences().model);
    this._drawBanner();
  }

  private _drawBanner(): void {
    const { models, session } = this._o;
    this._banner.render({
      connection: session.socket.status,
      modelsFailure: models.failure,
      noModel: models.noModel,
      setupHelp: models.setupHelp
    });
  }

  private _drawContext(): void {
    this._composer.setContext(this._o.active.label());
  }

  private readonly _o: IChatPanelOptions;
  private readonly _header: ChatHeader;
  private readonly _banner: Banner;
  private readonly _outside: OutsideStrip;
  private readonly _list: ConversationList;
  private readonly _view: TranscriptView;
  private readonly _composer: Composer;
  private readonly _learning: KnowledgeProgressView;
  private _transcript: Transcript | null = null;
  private readonly _sent = new WeakMap<Transcript, ISent>();
}
