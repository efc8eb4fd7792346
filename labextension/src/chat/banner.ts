/**
 * Messages above the conversation when something stands in the way: the connection is
 * down (with "Retry now"), the server refused (signed out, no access), or no model is
 * configured (a setup card saying what to do). Never a blank panel.
 */
import { Widget } from '@lumino/widgets';

import type { IConnectionStatus } from '../api/chatSocket';
import type { IFailure } from '../api/failure';
import { button, fill, h } from '../ui/dom';
import { connectionText } from './connectionText';

export interface IBannerState {
  connection: IConnectionStatus;
  /** Why the models could not be listed, if they could not. */
  modelsFailure: IFailure | null;
  /** True when the server has no model configured. */
  noModel: boolean;
  /** The server's own setup help, when it gave one. */
  setupHelp: string | null;
}

export class Banner extends Widget {
  constructor(actions: { retry(): void; recheck(): void }) {
    super();
    this._actions = actions;
    this.addClass('aiide-Banner');
    this._timer = window.setInterval(() => this._state && this.render(this._state), 1000);
  }

  render(state: IBannerState): void {
    this._state = state;
    const connection = connectionText(state.connection, Date.now());
    const shape = JSON.stringify([
      state.connection.state,
      state.connection.reason,
      state.modelsFailure,
      state.noModel,
      state.setupHelp
    ]);
    if (shape === this._shape && this._countdown) {
      // Only the countdown moved: keep the buttons (and keyboard focus) in place.
      this._countdown.textContent = connection.countdown;
      return;
    }
    this._shape = shape;
    this._countdown = null;
    const parts: HTMLElement[] = [];
    if (connection.message) {
      this._countdown = h(
        'span',
        { class: 'aiide-Banner-countdown', 'aria-hidden': 'true' },
        connection.countdown
      );
      parts.push(
        h(
          'div',
          { class: 'aiide-Banner-message', role: 'alert', 'data-kind': 'connection' },
          h('span', {}, connection.message),
          this._countdown,
          connection.canRetry ? button('Retry now', () => this._actions.retry()) : null
        )
      );
    }
    if (state.noModel) {
      parts.push(this._setupCard(state.setupHelp));
    } else if (state.modelsFailure && state.connection.state === 'open') {
      parts.push(
        h(
          'div',
          { class: 'aiide-Banner-message', role: 'alert', 'data-kind': state.modelsFailure.kind },
          h('span', {}, state.modelsFailure.message),
          button('Check again', () => this._actions.recheck())
        )
      );
    }
    fill(this.node, parts);
    this.node.hidden = parts.length === 0;
  }

  override dispose(): void {
    window.clearInterval(this._timer);
    super.dispose();
  }

  private _setupCard(help: string | null): HTMLElement {
    return h(
      'div',
      { class: 'aiide-Setup', role: 'region', 'aria-label': 'Set up a model' },
      h('h3', {}, 'Connect a model to start'),
      h(
        'p',
        {},
        'The assistant needs a language model. Whoever runs this Jupyter server can add one:'
      ),
      h(
        'ol',
        {},
        h('li', {}, 'Set ', h('code', {}, 'ANTHROPIC_API_KEY'), ' (or ', h('code', {}, 'OPENAI_API_KEY'), ') in the environment of the server.'),
        h('li', {}, 'Restart JupyterLab.')
      ),
      help ? h('p', { class: 'aiide-Setup-help' }, help) : null,
      h('p', {}, 'Sandboxed kernels work without a model.'),
      button('Check again', () => this._actions.recheck(), { kind: 'accept' })
    );
  }

  private readonly _actions: { retry(): void; recheck(): void };
  private readonly _timer: number;
  private _state: IBannerState | null = null;
  private _shape = '';
  private _countdown: HTMLElement | null = null;
}
