/** What the chat plugin offers the other aiide plugins (cell actions, status). */
import { Token } from '@lumino/coreutils';

import type { ChatSocket } from '../api/chatSocket';
import type { IChatContext, Task } from '../api/protocol';
import type { ModelDirectory } from './modelDirectory';
import type { ChatSession } from './session';

export interface IAiideChat {
  readonly socket: ChatSocket;
  readonly session: ChatSession;
  readonly models: ModelDirectory;
  /** The model picked in the chat (null: the server chooses). */
  readonly pickedModel: string | null;
  /** Shows the chat sidebar and focuses its box. */
  open(): void;
  /** Shows the chat and sends a question in the current conversation. */
  ask(text: string, task: Task, context: IChatContext): Promise<void>;
  /**
   * Shows the chat and starts a fix loop on a notebook cell's error (null: the notebook's
   * first error): re-run, patch with approval, verify, again (docs/fixloop.md).
   */
  fix(path: string, cellId: string | null): Promise<void>;
}

export const IAiideChat = new Token<IAiideChat>(
  'aiide:IAiideChat',
  'The aiide chat: its socket, session, models, and a way to ask.'
);
