/**
 * Turns the citation labels an answer quotes into links, after the answer was rendered
 * (Markdown → sanitized HTML). Works on text nodes only: the labels go back in as text
 * inside links built with `h`, so nothing a label holds is ever parsed as HTML.
 */
import type { ICitation } from '../api/protocol';
import { citationLink, splitByLabels, type OpenCitation } from './citations';

/** Where a label is left alone: already a link, or code the user may copy. */
const SKIP = new Set(['A', 'PRE', 'BUTTON', 'TEXTAREA']);

function skipped(node: Node, root: Node): boolean {
  for (let n = node.parentNode; n && n !== root; n = n.parentNode) {
    if (SKIP.has((n as Element).tagName)) {
      return true;
    }
  }
  return false;
}

/** Links each quoted label under `root`; returns how many links were made. */
export function linkifyCitations(
  root: HTMLElement,
  citations: readonly ICitation[],
  open: OpenCitation,
  baseUrl: string
): number {
  if (!citations.length) {
    return 0;
  }
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const texts: Text[] = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!skipped(n, root)) {
      texts.push(n as Text);
    }
  }
  let made = 0;
  for (const node of texts) {
    const segments = splitByLabels(node.data, citations);
    if (!segments.some(s => 'citation' in s)) {
      continue;
    }
    const parts = segments.map(s => {
      if ('citation' in s) {
        made++;
        return citationLink(s.citation, open, baseUrl, s.text);
      }
      return document.createTextNode(s.text);
    });
    node.replaceWith(...parts);
  }
  return made;
}
