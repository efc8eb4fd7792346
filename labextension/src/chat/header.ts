/**
 * The chat's top bar: conversations toggle with the current title, New, the model
 * picker (only the models the server allows this user), and the connection badge.
 */
import { Widget } from '@lumino/widgets';

import type { IConnectionStatus } from '../api/chatSocket';
import type { IModelInfo } from '../api/protocol';
import { button, fill, h } from '../ui/dom';
import { connectionText } from './connectionText';

export interface IHeaderActions {
  toggleList(): void;
  newChat(): void;
  pickModel(name: string | null): void;
  retry(): void;
}

export const AUTO_MODEL = '';

export class ChatHeader extends Widget {
  constructor(actions: IHeaderActions) {
    super();
    this.addClass('aiide-Header');
    this._toggle = h(
      'button',
      {
        type: 'button',
        class: 'aiide-Header-toggle',
        'aria-expanded': 'false',
        title: 'Show conversations',
        onclick: () => actions.toggleList()
      },
      h('span', { class: 'aiide-Header-title' }, 'New conversation')
    );
    this._models = h('select', {
      class: 'aiide-Header-model',
      'aria-label': 'Model',
      title: 'Model for new questions',
      onchange: () => actions.pickModel(this._models.value || null)
    });
    this._badge = h('button', {
      type: 'button',
      class: 'aiide-Connection',
      'data-state': 'connecting',
      onclick: () => actions.retry()
    });
    this.node.append(
      this._toggle,
      button('New', () => actions.newChat(), { title: 'Start a new conversation' }),
      this._models,
      this._badge
    );
  }

  setTitle(title: string): void {
    this._toggle.firstElementChild!.textContent = title;
  }

  setListOpen(open: boolean): void {
    this._toggle.setAttribute('aria-expanded', String(open));
    this._toggle.title = open ? 'Hide conversations' : 'Show conversations';
  }

  /** Fills the picker; `selected` not among `models` falls back to Auto. */
  setModels(models: readonly IModelInfo[], selected: string | null): void {
    const usable = models.filter(m => m.capabilities.includes('chat'));
    fill(
      this._models,
      h('option', { value: AUTO_MODEL }, 'Auto'),
      usable.map(m => h('option', { value: m.name }, `${m.name} (${m.provider})`))
    );
    this._models.value = usable.some(m => m.name === selected) ? (selected ?? AUTO_MODEL) : AUTO_MODEL;
    this._models.disabled = usable.length === 0;
  }

  setConnection(status: IConnectionStatus): void {
    const text = connectionText(status, Date.now());
    this._badge.dataset.state = status.state;
    this._badge.textContent = text.label;
    const detail = status.reason ? `${text.label}: ${status.reason}` : text.label;
    this._badge.title = text.canRetry ? `${detail}. Click to retry now.` : detail;
    this._badge.setAttribute('aria-label', `Connection: ${detail}`);
    this._badge.disabled = !text.canRetry;
  }

  private readonly _toggle: HTMLButtonElement;
  private readonly _models: HTMLSelectElement;
  private readonly _badge: HTMLButtonElement;
}
