/**
 * The conversation list (persisted on the server): search, open, rename, delete.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

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

export class ConversationList extends Widget {
  constructor(session: ChatSession, titles: TitleStore, onOpened: () => void) {
    super();
    this._session = session;
    this._titles = titles;
    this._onOpened = onOpened;
    this.addClass('aiide-Conversations');
    this._search = h('input', {
      type: 'search',
      class: 'aiide-Conversations-search',
      placeholder: 'Search conversations',
      'aria-label': 'Search conversations',
      oninput: () => this.render()
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

  render(): void {
    const failure = this._session.listFailure;
    const query = this._search.value.trim().toLowerCase();
    const items = this._session.conversations.filter(c =>
      this._title(c).toLowerCase().includes(query)
    );
    this._status.textContent = failure
      ? failure.message
      : items.length
        ? ''
        : query
          ? 'No conversation matches.'
          : 'No conversations yet.';
    this._status.classList.toggle('aiide-mod-error', failure !== null);
    fill(this._list, items.map(c => this._item(c)));
  }

  override dispose(): void {
    this._session.conversationsChanged.disconnect(this.render, this);
    this._titles.changed.disconnect(this.render, this);
    super.dispose();
  }

  private _title(c: IConversationSummary): string {
    return this._titles.title(c.id, c.title || 'Untitled');
  }

  private _item(c: IConversationSummary): HTMLElement {
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
      h('span', { class: 'aiide-Conversations-title' }, title),
      h('span', { class: 'aiide-Conversations-when' }, c.active_run ? 'answering…' : when(c.updated))
    );
    return h(
      'li',
      { class: current ? 'aiide-Conversations-item aiide-mod-current' : 'aiide-Conversations-item' },
      open,
      button('Rename', () => void this._rename(c), { title: `Rename "${title}"` }),
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
    if (result.button.accept) {
      this._titles.rename(c.id, input.value);
    }
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
      this._status.textContent = failure.message;
      this._status.classList.add('aiide-mod-error');
    } else {
      this._titles.forget(c.id);
    }
  }

  private readonly _session: ChatSession;
  private readonly _titles: TitleStore;
  private readonly _onOpened: () => void;
  private readonly _search: HTMLInputElement;
  private readonly _list: HTMLUListElement;
  private readonly _status: HTMLElement;
}
