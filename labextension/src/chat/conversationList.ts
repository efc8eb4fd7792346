/**
 * The conversation list (persisted on the server): search, open, rename, export, delete.
 *
 * Search, renames and exports go to the server: a search matches the stored titles and
 * the text of every turn, not only what this browser has loaded. Exports are downloads
 * (the browser saves the server's file, a `.md` or an `.ipynb`, under the server's name).
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import type { ExportFormat, IConversationMatch } from '../api/conversations';
import { describeFailure } from '../api/failure';
import type { IConversationSummary } from '../api/protocol';
import { button, fill, h } from '../ui/dom';
import type { ChatSession } from './session';
import type { TitleStore } from './titles';

function when(seconds: number): string {
  const date = new Date(seconds * 1000);
  const today = new Date();
  return date.toDateString() === today.toDateString()
    ? date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleDateString();
}

/** Milliseconds of quiet typing before the list asks the server. */
export const SEARCH_DELAY_MS = 250;

/** Saves a file the way a link with `download` does (the browser's own download flow). */
export function saveFile(name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h('a', { href: url, download: name, style: 'display: none' });
  document.body.append(link);
  link.click();
  link.remove();
  // Revoked on the next turn: the click has handed the blob to the download by then.
  setTimeout(() => URL.revokeObjectURL(url), 0);
}

export interface IConversationListOptions {
  /** Overrides `SEARCH_DELAY_MS` (tests). */
  searchDelayMs?: number;
  /** Overrides `saveFile` (tests). */
  save?: (name: string, type: string, text: string) => void;
}

export class ConversationList extends Widget {
  constructor(
    session: ChatSession,
    titles: TitleStore,
    onOpened: () => void,
    options: IConversationListOptions = {}
  ) {
    super();
    this._delay = options.searchDelayMs ?? SEARCH_DELAY_MS;
    this._save = options.save ?? saveFile;
    this._session = session;
    this._titles = titles;
    this._onOpened = onOpened;
    this.addClass('aiide-Conversations');
    this._search = h('input', {
      type: 'search',
      class: 'aiide-Conversations-search',
      placeholder: 'Search conversations',
      'aria-label': 'Search conversations',
      oninput: () => this._onInput()
    });
    this._list = h('ul', { class: 'aiide-Conversations-list', 'aria-label': 'Conversations' });
    this._status = h('div', { class: 'aiide-Conversations-status', role: 'status' });
    this.node.append(this._search, this._status, this._list);
    session.conversationsChanged.connect(this.render, this);
    titles.changed.connect(this.render, this);
  }

  focusSearch(): void {
    this._search.focus();
  }

  /** The text in the search box, as the server is asked for it. */
  get query(): string {
    return this._search.value.trim();
  }

  /** Asks the server now (the debounce is for typing). */
  search(): Promise<void> {
    this._clearTimer();
    const query = this.query;
    const ask = ++this._asked;
    if (!query) {
      this._matches = null;
      this._searchFailure = null;
      this.render();
      return Promise.resolve();
    }
    this._searching = true;
    this.render();
    return this._session.search(query).then(
      matches => {
        if (ask === this._asked) {
          this._matches = matches;
          this._searchFailure = null;
          this._searching = false;
          this.render();
        } // else a later query is on its way: this answer is stale, dropped
      },
      error => {
        if (ask === this._asked) {
          this._matches = [];
          this._searchFailure = describeFailure(error).message;
          this._searching = false;
          this.render();
        }
      }
    );
  }

  render(): void {
    const failure = this._searchFailure ?? this._session.listFailure?.message ?? null;
    const query = this.query;
    const items: readonly (IConversationSummary | IConversationMatch)[] = query
      ? (this._matches ?? [])
      : this._session.conversations;
    this._status.textContent = failure
      ? failure
      : items.length
        ? ''
        : query
          ? this._searching
            ? 'Searching…'
            : 'No conversation matches.'
          : 'No conversations yet.';
    this._status.classList.toggle('aiide-mod-error', failure !== null);
    fill(
      this._list,
      items.map(c => this._item(c))
    );
  }

  override dispose(): void {
    this._clearTimer();
    this._session.conversationsChanged.disconnect(this.render, this);
    this._titles.changed.disconnect(this.render, this);
    super.dispose();
  }

  private _onInput(): void {
    this._clearTimer();
    this._asked++; // whatever is in flight answers an older query now
    if (!this.query) {
      void this.search();
      return;
    }
    this._timer = setTimeout(() => void this.search(), this._delay);
  }

  private _clearTimer(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
  }

  private _title(c: IConversationSummary): string {
    return this._titles.title(c.id, c.title || 'Untitled');
  }

  private _item(c: IConversationSummary | IConversationMatch): HTMLElement {
    const title = this._title(c);
    const current = this._session.current.id === c.id;
    const open = h(
      'button',
      {
        type: 'button',
        class: 'aiide-Conversations-open',
        'aria-current': current ? 'true' : null,
        onclick: () => {
          void this._session.open(c.id);
          this._onOpened();
        }
      },
      h('span', { class: 'aiide-Conversations-title', title }, title), // whole on hover when cut
      h('span', { class: 'aiide-Conversations-when' }, c.active_run ? 'answering…' : when(c.updated)),
      'snippet' in c && c.snippet
        ? h('span', { class: 'aiide-Conversations-snippet' }, c.snippet)
        : null
    );
    return h(
      'li',
      { class: current ? 'aiide-Conversations-item aiide-mod-current' : 'aiide-Conversations-item' },
      open,
      button('Rename', () => void this._rename(c), { title: `Rename "${title}"` }),
      button('Export as Markdown', () => void this._export(c, 'markdown'), {
        title: `Download "${title}" as a Markdown file`,
        class: 'aiide-Conversations-exportMarkdown'
      }),
      button('Export as notebook', () => void this._export(c, 'ipynb'), {
        title: `Download "${title}" as a notebook (code blocks as code cells)`,
        class: 'aiide-Conversations-exportNotebook'
      }),
      button('Delete', () => void this._delete(c), { kind: 'reject', title: `Delete "${title}"` })
    );
  }

  private async _rename(c: IConversationSummary): Promise<void> {
    const input = h('input', { type: 'text', value: this._title(c), 'aria-label': 'New title' });
    const body = new Widget({ node: input });
    const result = await showDialog({
      title: 'Rename conversation',
      body,
      focusNodeSelector: 'input',
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Rename' })]
    });
    if (!result.button.accept) {
      return;
    }
    const failure = await this._session.rename(c.id, input.value);
    if (failure) {
      this._showError(failure.message);
      return;
    }
    // The server holds the title now; a title this browser kept from before goes.
    this._titles.forget(c.id);
    if (this.query) {
      await this.search();
    } else {
      this.render();
    }
  }

  private async _export(c: IConversationSummary, format: ExportFormat): Promise<void> {
    try {
      const file = await this._session.exportFile(c.id, format);
      this._save(file.name, file.type, file.text);
    } catch (error) {
      this._showError(describeFailure(error).message);
    }
  }

  private _showError(message: string): void {
    this._status.textContent = message;
    this._status.classList.add('aiide-mod-error');
  }

  private async _delete(c: IConversationSummary): Promise<void> {
    const result = await showDialog({
      title: 'Delete conversation?',
      body: `"${this._title(c)}" and its history will be deleted from the server.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!result.button.accept) {
      return;
    }
    const failure = await this._session.remove(c.id);
    if (failure) {
      this._showError(failure.message);
    } else {
      this._titles.forget(c.id);
      if (this._matches) {
        this._matches = this._matches.filter(m => m.id !== c.id);
        this.render();
      }
    }
  }

  private readonly _session: ChatSession;
  private readonly _titles: TitleStore;
  private readonly _onOpened: () => void;
  private readonly _search: HTMLInputElement;
  private readonly _list: HTMLUListElement;
  private readonly _status: HTMLElement;
  private readonly _delay: number;
  private readonly _save: (name: string, type: string, text: string) => void;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  /** Counts queries; an answer to anything but the latest is dropped. */
  private _asked = 0;
  private _matches: IConversationMatch[] | null = null;
  private _searchFailure: string | null = null;
  private _searching = false;
}
