/**
 * `@` mentions in the chat box: a file (`@data/prices.csv`) or a notebook cell
 * (`@analysis.ipynb#c3`). The box keeps the mentions the user picked; those whose
 * token is still in the text when sending go into `context.mentions`.
 */
import type { ICitation, Mention } from '../api/protocol';

/** The protocol accepts at most this many mentions per message. */
export const MAX_MENTIONS = 20;

export interface IMentionCandidate {
  /** What is inserted into the text (starts with `@`). */
  token: string;
  /** What the popup shows. */
  label: string;
  detail: string;
  mention: Mention;
}

export function fileCandidate(path: string): IMentionCandidate {
  return {
    token: `@${path}`,
    label: path.split('/').pop() || path,
    detail: path,
    mention: { kind: 'file', path }
  };
}

/** A folder: its names go to the model; picking it also lets the user type on into it. */
export function folderCandidate(path: string): IMentionCandidate {
  return {
    token: `@${path}/`,
    label: `${path.split('/').pop() || path}/`,
    detail: `folder ${path}/`,
    mention: { kind: 'folder', path }
  };
}

export function cellCandidate(
  path: string,
  cellId: string,
  index: number,
  source: string
): IMentionCandidate {
  const first = source.split('\n').find(line => line.trim()) ?? '';
  return {
    token: `@${path}#${cellId}`,
    label: `cell ${index + 1}`,
    detail: first.trim().slice(0, 60) || '(empty)',
    mention: { kind: 'cell', path, cell_id: cellId }
  };
}

/**
 * A passage the knowledge index found for what follows `@`: a notebook cell or a file
 * anywhere in the workspace, found by meaning rather than by name.
 */
export function knowledgeCandidate(citation: ICitation, text: string): IMentionCandidate {
  const name = citation.path; // with its folder: two "utils.py" are told apart
  const detail = (citation.title || text.split('\n').find(l => l.trim()) || '').trim().slice(0, 60);
  if (citation.cell_id) {
    const cell = citation.cell_index !== null ? `cell ${citation.cell_index + 1}` : 'cell';
    return {
      token: `@${citation.path}#${citation.cell_id}`,
      label: `${name} · ${cell}`,
      detail: detail || citation.path,
      mention: { kind: 'cell', path: citation.path, cell_id: citation.cell_id }
    };
  }
  const { line_start: start, line_end: end } = citation;
  if (start !== null && end !== null && start >= 1 && end >= start) {
    // The passage (one function), not its whole file: the model gets those lines only.
    return {
      token: `@${citation.path}:${start}-${end}`,
      label: `${name}:${start}`,
      detail: detail || citation.path,
      mention: { kind: 'file', path: citation.path, lines: [start, end] }
    };
  }
  return {
    token: `@${citation.path}`,
    label: name,
    detail: detail || citation.path,
    mention: { kind: 'file', path: citation.path }
  };
}

/** Local matches first, then the index's, each token once, at most `limit`. */
export function mergeCandidates(
  local: readonly IMentionCandidate[],
  found: readonly IMentionCandidate[],
  limit = 12
): IMentionCandidate[] {
  const seen = new Set<string>();
  const out: IMentionCandidate[] = [];
  for (const c of [...local, ...found]) {
    if (!seen.has(c.token) && out.length < limit) {
      seen.add(c.token);
      out.push(c);
    }
  }
  return out;
}

/** The `@word` being typed before the caret, if any. */
export function mentionQuery(
  text: string,
  caret: number
): { start: number; query: string } | null {
  const before = text.slice(0, caret);
  const match = /(^|\s)@([^\s@]*)$/.exec(before);
  if (!match) {
    return null;
  }
  return { start: caret - match[2].length - 1, query: match[2] };
}

/**
 * Candidates matching `query`: prefix matches of the label first, then substrings;
 * ties keep the given order (the active notebook's cells before files).
 */
export function rankCandidates(
  candidates: readonly IMentionCandidate[],
  query: string,
  limit = 8
): IMentionCandidate[] {
  const q = query.toLowerCase();
  const scored = candidates
    .map(c => {
      const label = c.label.toLowerCase();
      const all = `${c.token} ${c.detail}`.toLowerCase();
      const score = label.startsWith(q) ? 0 : label.includes(q) ? 1 : all.includes(q) ? 2 : -1;
      return { c, score };
    })
    .filter(x => x.score >= 0);
  scored.sort((a, b) => a.score - b.score);
  return scored.slice(0, limit).map(x => x.c);
}

/** The picked mentions whose token is still in the text, once each, at most 20. */
export function collectMentions(
  text: string,
  picked: readonly IMentionCandidate[]
): Mention[] {
  const seen = new Set<string>();
  const result: Mention[] = [];
  for (const c of picked) {
    if (!seen.has(c.token) && text.includes(c.token) && result.length < MAX_MENTIONS) {
      seen.add(c.token);
      result.push(c.mention);
    }
  }
  return result;
}
