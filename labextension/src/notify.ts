/**
 * Persistent notifications whose full text stays reachable: JupyterLab's toasts cut
 * messages after 140 characters, so longer ones get a "Details" button.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';

/** JupyterLab truncates toast messages longer than this. */
export const TOAST_MAX_CHARS = 140;

export type PersistentType = 'warning' | 'error';

/** Shows `message` until the user dismisses it; returns the notification id. */
export function notifyPersistent(type: PersistentType, message: string): string {
  const actions: Notification.IAction[] = [];
  if (message.length > TOAST_MAX_CHARS) {
    actions.push({
      label: 'Details',
      caption: 'Show the whole message',
      callback: event => {
        event.preventDefault(); // keep the toast open
        void showDialog({
          title: type === 'error' ? 'aiide: error' : 'aiide: warning',
          body: message,
          buttons: [Dialog.okButton()]
        });
      }
    });
  }
  return Notification.emit(message, type, { autoClose: false, actions });
}
