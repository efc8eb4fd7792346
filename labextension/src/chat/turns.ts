/**
 * What the end of a conversation offers: the last question to edit or send again
 * (Regenerate, or Retry after a failure), and whether the assistant is working with
 * nothing to show yet (the "Thinking…" line between Enter and the first token).
 *
 * Pure (no DOM), read from a `Transcript`, so the rules are unit-tested.
 */
import type { Task } from '../api/protocol';
import { OUTSIDE_AGENT, type RunState, type Transcript } from './transcript';

export interface ILastTurn {
  /** The text sent (a slash command already expanded). */
  question: string;
  runId: string;
  task: Task;
  /** How the run ended: `failed` / `expired` offer Retry, the others Regenerate. */
  state: RunState;
}

/**
 * The last question and how its run ended; null while a run is going, before the first
 * question, or when the last question was never sent or its text is not known.
 */
export function lastTurn(transcript: Transcript): ILastTurn | null {
  if (transcript.activeRun) {
    return null;
  }
  const blocks = transcript.blocks;
  for (let i = blocks.length - 1; i >= 0; i--) {
    const block = blocks[i];
    if (block.kind !== 'question') {
      continue;
    }
    const run = block.runId ? transcript.run(block.runId) : undefined;
    if (!run || block.failed || !block.text || run.provider === OUTSIDE_AGENT) {
      return null;
    }
    return { question: block.text, runId: run.id, task: run.task, state: run.state };
  }
  return null;
}

/** Whether a retry is what the last turn needs (its run did not come to an answer). */
export function failedTurn(turn: ILastTurn): boolean {
  return turn.state === 'failed' || turn.state === 'expired';
}

/**
 * The assistant works and nothing on screen moves: a question is on its way (no run
 * yet), or the run is going and is neither streaming text nor waiting for the user.
 */
export function isThinking(transcript: Transcript): boolean {
  const blocks = transcript.blocks;
  const last = blocks[blocks.length - 1];
  if (last?.kind === 'question' && last.runId === null && last.failed === null) {
    return true;
  }
  const run = transcript.activeRun;
  if (!run || run.state !== 'running') {
    return false;
  }
  if (last?.kind === 'call' && last.request?.state === 'confirm') {
    return false; // a notebook change waits for the user's OK on its card
  }
  return !(last?.kind === 'answer' && last.runId === run.id && last.streaming);
}
