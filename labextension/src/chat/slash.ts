/**
 * Slash commands of the chat box. Each turns into an ordinary `chat` message (the
 * protocol has no commands): a task (`agent` may use tools, `chat` may not) and the
 * text the model gets. `/learn` is handled in the browser (it indexes files).
 */
import type { Task } from '../api/protocol';

export interface ISlashCommand {
  name: string;
  /** null: not a chat message (handled by the panel). */
  task: Task | null;
  description: string;
  /**
   * Whether the command means something without text after it: Enter on the bare,
   * fully typed name sends it (`/learn` learns the workspace) rather than completing it.
   */
  argument: 'optional' | 'required';
  /** The text sent for `/name rest`. */
  expand(rest: string): string;
}

export const SLASH_COMMANDS: readonly ISlashCommand[] = [
  {
    name: 'ask',
    task: 'chat',
    description: 'Ask a question; nothing in your notebooks changes',
    argument: 'required',
    expand: rest => rest
  },
  {
    name: 'explain',
    task: 'chat',
    description: 'Explain the active cell (or what follows the command)',
    argument: 'optional',
    expand: rest =>
      rest ? `Explain this: ${rest}` : 'Explain what the active cell does, step by step.'
  },
  {
    name: 'fix',
    task: 'agent',
    description: 'Fix the error in the active cell, re-run and check the fix (a fix loop)',
    argument: 'optional',
    expand: rest =>
      `Fix the error in the active cell and run it again to check.${rest ? ` ${rest}` : ''}`
  },
  {
    name: 'generate',
    task: 'agent',
    description: 'Write code into a new cell below the active one',
    argument: 'required',
    expand: rest =>
      `Write code for the following and insert it as a new cell below the active cell: ${rest}`
  },
  {
    name: 'learn',
    task: null,
    description: 'Index a file or folder so answers can cite it (/learn data/; alone: the workspace)',
    argument: 'optional',
    expand: rest => rest
  }
];

export type SlashParse =
  | { kind: 'none' }
  | { kind: 'command'; command: ISlashCommand; rest: string }
  | { kind: 'unknown'; name: string };

/** Recognises `/name rest` at the start of the text. */
export function parseSlash(text: string): SlashParse {
  const match = /^\/([a-z]+)(?:\s+([\s\S]*))?$/.exec(text.trim());
  if (!match) {
    return { kind: 'none' };
  }
  const command = SLASH_COMMANDS.find(c => c.name === match[1]);
  if (!command) {
    return { kind: 'unknown', name: match[1] };
  }
  return { kind: 'command', command, rest: (match[2] ?? '').trim() };
}

/** Commands matching what the user has typed so far ("/ex" → explain). */
export function completeSlash(text: string): ISlashCommand[] {
  const match = /^\/([a-z]*)$/.exec(text);
  return match ? SLASH_COMMANDS.filter(c => c.name.startsWith(match[1])) : [];
}

/** The command `text` names in full and that may be sent as it is (`/learn`), or null. */
export function completeCommand(text: string): ISlashCommand | null {
  const match = /^\/([a-z]+)\s*$/.exec(text);
  const command = match ? SLASH_COMMANDS.find(c => c.name === match[1]) : undefined;
  return command && command.argument === 'optional' ? command : null;
}
