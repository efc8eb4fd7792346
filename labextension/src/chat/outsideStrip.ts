/**
 * Above the conversation: the other conversations where an outside agent's call (an MCP
 * client of aiide) waits for the user, each with "Review". The agent is blocked until
 * someone answers, so it must not be missed while another conversation is on screen.
 */
import { Widget } from '@lumino/widgets';

import { button, fill, h } from '../ui/dom';
import type { ChatSession } from './session';

export class OutsideStrip extends Widget {
  constructor(session: ChatSession) {
    super();
    this._session = session;
    this.addClass('aiide-Banner');
    this.addClass('aiide-OutsideStrip');
    session.outsideChanged.connect(this.render, this);
    this.render();
  }

  render(): void {
    const waiting = this._session.outsideWaiting;
    fill(
      this.node,
      waiting.map(id =>
        h(
          'div',
          { class: 'aiide-Banner-message', role: 'alert', 'data-kind': 'outside-agent' },
          h('span', {}, 'An outside agent waits for your approval.'),
          button('Review', () => void this._session.open(id), {
            kind: 'accept',
            title: 'Show the call and its changes'
          })
        )
      )
    );
    this.node.hidden = waiting.length === 0;
  }

  override dispose(): void {
    this._session.outsideChanged.disconnect(this.render, this);
    super.dispose();
  }

  private readonly _session: ChatSession;
}
