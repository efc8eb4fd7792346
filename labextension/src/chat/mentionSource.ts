/**
 * What `@` can mention: the cells of the active notebook and the files next to it and
 * at the top of the server root (listings cached for a few seconds).
 */
import type { Contents } from '@jupyterlab/services';

import type { ActiveContext } from './activeContext';
import { cellCandidate, fileCandidate, rankCandidates, type IMentionCandidate } from './mentions';

const CACHE_MS = 10_000;

export class MentionSource {
  constructor(contents: Contents.IManager, active: ActiveContext) {
    this._contents = contents;
    this._active = active;
  }

  async candidates(query: string): Promise<IMentionCandidate[]> {
    const panel = this._active.notebook;
    const cells: IMentionCandidate[] = panel
      ? panel.content.widgets.map((cell, i) =>
          cellCandidate(panel.context.path, cell.model.id, i, cell.model.sharedModel.getSource())
        )
      : [];
    const dir = panel ? panel.context.path.split('/').slice(0, -1).join('/') : '';
    const dirs = dir ? [dir, ''] : [''];
    const files = (await Promise.all(dirs.map(d => this._list(d)))).flat();
    const unique = [...new Map(files.map(f => [f.token, f])).values()];
    return rankCandidates([...cells, ...unique], query);
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
        .filter(e => e.type !== 'directory' && !e.name.startsWith('.'))
        .map(e => fileCandidate(e.path));
    } catch {
      items = [];
    }
    this._cache.set(dir, { at: Date.now(), items });
    return items;
  }

  private readonly _contents: Contents.IManager;
  private readonly _active: ActiveContext;
  private readonly _cache = new Map<string, { at: number; items: IMentionCandidate[] }>();
}
