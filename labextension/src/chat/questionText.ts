/**
 * A question as the user sees it in their own bubble: plain text, with the fenced code
 * blocks a cell action writes ("Fix this error", "Explain") shown as code rather than as
 * literal ``` lines. Nothing else is interpreted: it is what the user sent, as text.
 */
import { h } from '../ui/dom';

export interface IQuestionPiece {
  kind: 'text' | 'code';
  text: string;
}

/** Splits at fences of three or more backticks; an unclosed fence runs to the end. */
export function questionPieces(text: string): IQuestionPiece[] {
  const pieces: IQuestionPiece[] = [];
  // `m`: a fence starts a line; the unclosed case ends at the end of the text, not a line.
  const fence = /^(`{3,})[^\n`]*\n([\s\S]*?)(?:\n\1`*[ \t]*(?:\n|$)|(?![\s\S]))/gm;
  let at = 0;
  for (const match of text.matchAll(fence)) {
    const start = match.index ?? 0;
    const before = text.slice(at, start).replace(/^\n+|\n+$/g, '');
    if (before.trim()) {
      pieces.push({ kind: 'text', text: before });
    }
    pieces.push({ kind: 'code', text: match[2] });
    at = start + match[0].length;
  }
  const rest = text.slice(at).replace(/^\n+/, '');
  if (rest.trim() || !pieces.length) {
    pieces.push({ kind: 'text', text: rest });
  }
  return pieces;
}

export function questionNode(text: string): HTMLElement {
  return h(
    'div',
    { class: 'aiide-Question-text' },
    questionPieces(text).map(p =>
      p.kind === 'code' ? h('pre', { class: 'aiide-Question-code' }, h('code', {}, p.text)) : h('span', {}, p.text)
    )
  );
}
