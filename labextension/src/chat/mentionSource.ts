/**
 * What `@` can mention: the cells of the active notebook, the files and folders next to
 * it, at the top of the server root and in the folder of a path being typed (listings
 * cached for a few seconds), and — from three
 * characters on — what the user's knowledge index finds for the word, anywhere in the
 * workspace (`GET /aiide/api/knowledge/search`).
 */
import type { Contents } from '@jupyterlab/services';

import type { IKnowledgeHit } from '../api/knowledge';
import type { ActiveContext } from './activeContext';
import {
  cellCandidate,
  fileCandidate,
  folderCandidate,
  knowledgeCandidate,
  mergeCandidates,
  rankCandidates,
  type IMentionCandidate
} from './mentions';

const CACHE_MS = 10_000;
/** Shorter words match too much to be worth a search. */
const SEARCH_MIN_CHARS = 3;
/**
 * A search embeds the word (a metered call with a paid endpoint): only once typing
 * pauses this long; a word typed on meanwhile is not searched at all.
 */
const SEARCH_PAUSE_MS = 200;

export type KnowledgeSearch = (query: string) => Promise<IKnowledgeHit[]>;

export class MentionSource {
  constructor(contents: Contents.IManager, active: ActiveContext, search?: KnowledgeSearch) {
    this._contents = contents;
    this._active = active;
    this._search = search ?? null;
  }

  async candidates(query: string): Promise<IMentionCandidate[]> {
    // Asked first, before any await: the search's place in the typing order is taken
    // now. Taken after the listings below (which answer in any order, or at once from
    // the cache), the last keystroke's search could be cancelled by an earlier one's.
    const found = this._found(query);
    const panel = this._active.notebook;
    const cells: IMentionCandidate[] = panel
      ? panel.content.widgets.map((cell, i) =>
          cellCandidate(panel.context.path, cell.model.id, i, cell.model.sharedModel.getSource())
        )
      : [];
    // The folder of the document in use: the notebook, or the file open in the editor.
    const docPath = panel ? panel.context.path : (this._active.file?.context.path ?? '');
    const dir = docPath.split('/').slice(0, -1).join('/');
    const dirs = new Set(dir ? [dir, ''] : ['']);
    // A path being typed (`@data/sc`): its folder is listed too, from the notebook's
    // folder and from the root, so any file can be reached by its path.
    const slash = query.lastIndexOf('/');
    const typedDirs = new Set<string>();
    if (slash > 0) {
      const typed = query.slice(0, slash);
      typedDirs.add(typed);
      if (dir) {
        typedDirs.add(`${dir}/${typed}`);
      }
      typedDirs.forEach(d => dirs.add(d));
    }
    const files = (await Promise.all([...dirs].map(d => this._list(d)))).flat();
    const unique = [...new Map(files.map(f => [f.token, f])).values()];
    // A bare `@` offers files and folders beside a few cells, not cells alone.
    let local: IMentionCandidate[];
    if (!query) {
      local = [...cells.slice(0, 4), ...unique.slice(0, 8)];
    } else if (slash > 0) {
      const there = unique.filter(c => typedDirs.has(c.mention.path.split('/').slice(0, -1).join('/')));
      local = rankCandidates(there, query.slice(slash + 1));
    } else {
      local = rankCandidates([...cells, ...unique], query);
    }
    return mergeCandidates(local, await found);
  }

  /** The index's candidates; none when it is off, empty, or its model is missing. */
  private async _found(query: string): Promise<IMentionCandidate[]> {
    const q = query.trim();
    // A path being typed is completed from its folder: the index finds by meaning, and a
    // slow first search (its model loading) must not hold the folder's names back.
    if (!this._search || q.length < SEARCH_MIN_CHARS || q.includes('/')) {
      return [];
    }
    const cached = this._searches.get(q);
    if (cached && Date.now() - cached.at < CACHE_MS) {
      return cached.items;
    }
    const ticket = ++this._ticket;
    await new Promise(resolve => window.setTimeout(resolve, SEARCH_PAUSE_MS));
    if (ticket !== this._ticket) {
      return [];
    }
    let items: IMentionCandidate[];
    try {
      items = (await this._search(q)).slice(0, 5).map(h => knowledgeCandidate(h.citation, h.text));
    } catch {
      return []; // the box must keep working without the index; asked again next time
    }
    if (!items.length) {
      return items; // not cached: a folder being learned right now has hits a moment later
    }
    if (this._searches.size >= 100) {
      this._searches.clear(); // a bound, not an LRU: typing rarely repeats 100 words
    }
    this._searches.set(q, { at: Date.now(), items });
    return items;
  }

  private async _list(dir: string): Promise<IMentionCandidate[]> {
    const cached = this._cache.get(dir);
    if (cached && Date.now() - cached.at < CACHE_MS) {
      return cached.items;
    }
    let items: IMentionCandidate[] = [];
    try {
      const model = await this._contents.get(dir, { content: true });
      const entries = Array.isArray(model.content) ? (model.content as Contents.IModel[]) : [];
      items = entries
        .filter(e => !e.name.startsWith('.'))
        .map(e => (e.type === 'directory' ? folderCandidate(e.path) : fileCandidate(e.path)));
    } catch {
      items = [];
    }
    this._cache.set(dir, { at: Date.now(), items });
    return items;
  }

  private readonly _contents: Contents.IManager;
  private readonly _active: ActiveContext;
  private readonly _search: KnowledgeSearch | null;
  private _ticket = 0;
  private readonly _searches = new Map<string, { at: number; items: IMentionCandidate[] }>();
  private readonly _cache = new Map<string, { at: number; items: IMentionCandidate[] }>();
}
