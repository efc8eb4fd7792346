/**
 * The conversation on screen survives a reload (issue 19, finding 1): its id is kept in
 * JupyterLab's state database (per workspace, like the rest of the layout) and opened
 * again when the lab comes back. Opening replays its events from the server, so a run
 * still answering streams on into view. "New conversation" forgets it: a reload then
 * shows a new one, as the user left it.
 */
import type { IStateDB } from '@jupyterlab/statedb';
import type { ISignal } from '@lumino/signaling';

import type { IConversationSummary } from '../api/protocol';
import type { ITranscriptChange, Transcript } from './transcript';

export const OPEN_CONVERSATION_KEY = 'aiide:chat-open-conversation';

/** What of the chat session this needs. */
export interface IConversationSession {
  readonly current: Transcript;
  readonly currentChanged: ISignal<unknown, Transcript>;
  readonly conversations: readonly IConversationSummary[];
  refresh(): Promise<void>;
  open(conversationId: string): Promise<void>;
}

type State = Pick<IStateDB, 'fetch' | 'save' | 'remove'>;

export class OpenConversation {
  constructor(session: IConversationSession, state: State | null) {
    this._session = session;
    this._state = state;
    session.currentChanged.connect(this._follow, this);
    // The empty draft shown at start says nothing yet: the saved id waits for restore().
    this._watch(session.current);
  }

  /**
   * Opens the conversation that was on screen, if it still exists and nothing else was
   * opened meanwhile. True when it did.
   */
  async restore(): Promise<boolean> {
    if (!this._state) {
      return false;
    }
    let id: unknown;
    try {
      id = await this._state.fetch(OPEN_CONVERSATION_KEY);
    } catch {
      return false;
    }
    if (typeof id !== 'string' || !id) {
      return false;
    }
    await this._session.refresh();
    const current = this._session.current;
    if (current.id !== null || current.blocks.length > 0) {
      return false; // the user (or an outside agent's card) got there first
    }
    if (!this._session.conversations.some(c => c.id === id)) {
      this._remember(null); // deleted, or removed by the server's retention
      return false;
    }
    await this._session.open(id);
    return true;
  }

  private _follow(_: unknown, transcript: Transcript): void {
    this._watch(transcript);
    this._remember(transcript.id);
  }

  private _watch(transcript: Transcript): void {
    this._watched?.changed.disconnect(this._onChange, this);
    this._watched = transcript;
    transcript.changed.connect(this._onChange, this);
  }

  /** A new conversation gets its id with its first run: remember it then. */
  private _onChange(transcript: Transcript, _change: ITranscriptChange): void {
    if (transcript.id !== null && transcript.id !== this._saved) {
      this._remember(transcript.id);
    }
  }

  private _remember(id: string | null): void {
    if (id === this._saved || !this._state) {
      return;
    }
    this._saved = id;
    const done = id ? this._state.save(OPEN_CONVERSATION_KEY, id) : this._state.remove(OPEN_CONVERSATION_KEY);
    void done.catch(() => undefined); // a lost preference, never a broken chat
  }

  private readonly _session: IConversationSession;
  private readonly _state: State | null;
  private _watched: Transcript | null = null;
  private _saved: string | null | undefined = undefined;
}
