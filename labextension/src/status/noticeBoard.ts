/**
 * Keeps the status plugin's notifications in step with the latest status: raises new
 * ones, takes down those that no longer apply, never stacks duplicates.
 */
import { Notification } from '@jupyterlab/apputils';

import { notifyPersistent } from '../notify';
import { type INotice, planNotices } from './describe';

export class NoticeBoard {
  /** Shows `notices` (persistent, until dismissed or no longer wanted). */
  sync(notices: readonly INotice[]): void {
    this._forgetDismissed();
    const plan = planNotices(this._shown.keys(), notices);
    for (const key of plan.dismiss) {
      const id = this._shown.get(key);
      if (id !== undefined) {
        Notification.dismiss(id);
      }
      this._shown.delete(key);
    }
    for (const notice of plan.show) {
      const id = notifyPersistent(notice.type, notice.message);
      this._shown.set(notice.key, id);
    }
  }

  /** A notice the user dismissed comes back on the next refresh if it still applies. */
  private _forgetDismissed(): void {
    const live = new Set(Notification.manager.notifications.map(n => n.id));
    for (const [key, id] of this._shown) {
      if (!live.has(id)) {
        this._shown.delete(key);
      }
    }
  }

  private readonly _shown = new Map<string, string>();
}
