/** An aiide status-bar item: text, tooltip, flags in `data-aiide-status`, clickable. */
import { Widget } from '@lumino/widgets';

import { type IStatusView, flagsAttribute } from './describe';

export const STATUS_ITEM_ID = 'aiide-status';

export class StatusItem extends Widget {
  constructor(onClick: () => void, id: string = STATUS_ITEM_ID) {
    super();
    this.id = id;
    this.addClass('aiide-StatusItem');
    this.node.setAttribute('role', 'button');
    this.node.tabIndex = 0;
    this._onClick = onClick;
    this.node.addEventListener('click', this._onClick);
    this.node.addEventListener('keydown', this._onKey);
  }

  render(view: IStatusView): void {
    this.node.textContent = view.text;
    this.node.title = view.title;
    this.node.setAttribute('aria-label', view.title);
    this.node.dataset.aiideStatus = flagsAttribute(view.flags);
  }

  override dispose(): void {
    this.node.removeEventListener('click', this._onClick);
    this.node.removeEventListener('keydown', this._onKey);
    super.dispose();
  }

  private readonly _onKey = (event: KeyboardEvent): void => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      this._onClick();
    }
  };

  private readonly _onClick: () => void;
}
