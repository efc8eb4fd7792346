/**
 * Citations of knowledge passages (docs/protocol.md, Citations) as links that open the
 * file at the cell or line.
 *
 * Everything in a citation comes from the user's files and the model (a file may be
 * named `<img onerror=…>.ipynb`, a heading may hold a script): it is only ever put in
 * the page as text nodes and attribute values, and the only URL made from it is the
 * lab's own `tree/` URL with each path part percent-encoded, so no scheme can sneak in.
 */
import type { ICitation } from '../api/protocol';
import { h } from '../ui/dom';

/** Where a citation points, as the opener needs it. */
export interface ICitationTarget {
  path: string;
  /** Notebook cell: by id first, by index when the id is gone. */
  cellId: string | null;
  cellIndex: number | null;
  /** 1-based line in a text file (or in the cell). */
  line: number | null;
}

export type OpenCitation = (target: ICitationTarget) => void;

/** What the views need to draw citation links. */
export interface ICitationLinks {
  open: OpenCitation;
  /** The server's base URL (PageConfig), for the links' `href`. */
  baseUrl: string;
}

export function targetOf(c: ICitation): ICitationTarget {
  return {
    path: c.path,
    cellId: c.cell_id,
    cellIndex: c.cell_index,
    line: c.line_start
  };
}

/** The index of the cited cell: by id, else by index while it is in range, else -1. */
export function cellIndexFor(
  ids: readonly string[],
  target: Pick<ICitationTarget, 'cellId' | 'cellIndex'>
): number {
  if (target.cellId) {
    const found = ids.indexOf(target.cellId);
    if (found >= 0) {
      return found;
    }
  }
  const i = target.cellIndex;
  return i !== null && i >= 0 && i < ids.length ? i : -1;
}

export function isNotebookCitation(c: ICitation): boolean {
  return c.cell_id !== null || c.cell_index !== null;
}

/** The link's words: file name and cell or lines ("sensors.ipynb · cell 5"). */
export function shortLabel(c: ICitation): string {
  const name = c.path.split('/').pop() || c.path;
  if (isNotebookCitation(c)) {
    return c.cell_index !== null ? `${name} · cell ${c.cell_index + 1}` : `${name} · cell ${c.cell_id}`;
  }
  if (c.line_start !== null) {
    const end = c.line_end !== null && c.line_end !== c.line_start ? `-${c.line_end}` : '';
    return `${name}:${c.line_start}${end}`;
  }
  return name;
}

/** The tooltip: the full path, where in it, and the heading the passage sits under. */
export function tooltip(c: ICitation): string {
  const where = isNotebookCitation(c)
    ? `cell ${c.cell_index !== null ? c.cell_index + 1 : '?'}${c.cell_id ? ` (id ${c.cell_id})` : ''}`
    : c.line_start !== null
      ? `lines ${c.line_start}-${c.line_end ?? c.line_start}`
      : '';
  const title = c.title ? ` — ${c.title}` : '';
  return `Open ${c.path}${where ? `, ${where}` : ''}${title}`;
}

/**
 * The lab URL of a file (for a middle click or "open in new tab"): `<base>lab/tree/<path>`
 * with every path part percent-encoded, so `javascript:x` stays a file name.
 */
export function citationHref(baseUrl: string, path: string): string {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const parts = path
    .split('/')
    .filter(p => p !== '' && p !== '.' && p !== '..')
    // Strict RFC 3986: also the quotes and parentheses encodeURIComponent leaves alone.
    .map(p =>
      encodeURIComponent(p).replace(
        /[!'()*]/g,
        c => `%${c.charCodeAt(0).toString(16).toUpperCase()}`
      )
    );
  return `${base}lab/tree/${parts.join('/')}`;
}

/** Citations once each (by label), in order. */
export function uniqueCitations(citations: readonly ICitation[]): ICitation[] {
  const seen = new Set<string>();
  return citations.filter(c => (seen.has(c.label) ? false : (seen.add(c.label), true)));
}

export type Segment = { text: string } | { text: string; citation: ICitation };

/**
 * `text` cut where it quotes a citation's label (the model cites `[label]`), longest
 * labels first so `a.py:1-20` is not taken for `a.py:1-2`.
 */
export function splitByLabels(text: string, citations: readonly ICitation[]): Segment[] {
  const labels = uniqueCitations(citations)
    .filter(c => c.label.length > 0)
    .sort((a, b) => b.label.length - a.label.length);
  const out: Segment[] = [];
  let rest = text;
  while (rest.length > 0 && labels.length > 0) {
    let best: { at: number; citation: ICitation } | null = null;
    for (const c of labels) {
      const at = rest.indexOf(c.label);
      if (at >= 0 && (best === null || at < best.at)) {
        best = { at, citation: c };
      }
    }
    if (best === null) {
      break;
    }
    if (best.at > 0) {
      out.push({ text: rest.slice(0, best.at) });
    }
    out.push({ text: best.citation.label, citation: best.citation });
    rest = rest.slice(best.at + best.citation.label.length);
  }
  if (rest.length > 0) {
    out.push({ text: rest });
  }
  return out;
}

/** The citations whose label the text quotes, in order of first appearance. */
export function citedIn(text: string, citations: readonly ICitation[]): ICitation[] {
  return uniqueCitations(
    splitByLabels(text, citations).flatMap(s => ('citation' in s ? [s.citation] : []))
  );
}

/** One citation as a link; a plain click opens it in the lab. */
export function citationLink(
  c: ICitation,
  open: OpenCitation,
  baseUrl: string,
  text: string = shortLabel(c)
): HTMLAnchorElement {
  return h(
    'a',
    {
      class: 'aiide-Citation',
      href: citationHref(baseUrl, c.path),
      title: tooltip(c),
      'data-path': c.path,
      'data-cell-id': c.cell_id ?? undefined,
      'data-line': c.line_start ?? undefined,
      onclick: (event: Event) => {
        const e = event as MouseEvent;
        if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) {
          return; // the browser's own ways (new tab…) keep working
        }
        e.preventDefault();
        open(targetOf(c));
      }
    },
    text
  );
}

/** "Sources:" and a link per citation (nothing when there are none). */
export function citationList(
  citations: readonly ICitation[],
  open: OpenCitation,
  baseUrl: string,
  heading = 'Sources'
): HTMLElement | null {
  const unique = uniqueCitations(citations);
  if (!unique.length) {
    return null;
  }
  return h(
    'div',
    { class: 'aiide-Citations', role: 'group', 'aria-label': heading },
    h('span', { class: 'aiide-Citations-heading' }, `${heading}:`),
    h(
      'ul',
      {},
      unique.map(c =>
        h(
          'li',
          {},
          citationLink(c, open, baseUrl),
          c.title ? h('span', { class: 'aiide-Citation-title' }, ` ${c.title}`) : null
        )
      )
    )
  );
}
