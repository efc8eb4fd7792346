/**
 * The words for the chat connection's state: a short label for the header badge and,
 * when something is wrong, a sentence for the banner. Pure, so it is unit-tested.
 */
import type { IConnectionStatus } from '../api/chatSocket';

export interface IConnectionText {
  label: string;
  /** What the banner says; null when all is well. */
  message: string | null;
  /** When the next attempt is due ("" when none): changes every second. */
  countdown: string;
  /** Whether "Retry now" makes sense. */
  canRetry: boolean;
}

export function connectionText(status: IConnectionStatus, now: number): IConnectionText {
  switch (status.state) {
    case 'open':
      return { label: 'Connected', message: null, countdown: '', canRetry: false };
    case 'connecting':
      return { label: 'Connecting…', message: null, countdown: '', canRetry: false };
    case 'reconnecting': {
      const wait =
        status.retryAt === null ? null : Math.max(0, Math.ceil((status.retryAt - now) / 1000));
      return {
        label: 'Reconnecting…',
        message:
          `Lost the connection to the assistant (${status.reason ?? 'no answer'}). ` +
          'Your conversation picks up where it stopped once it is back.',
        countdown: wait === null ? '' : wait > 0 ? `Next try in ${wait} s.` : 'Trying now…',
        canRetry: true
      };
    }
    case 'incompatible':
      return {
        label: 'Incompatible server',
        message: `The assistant cannot talk to this server: ${status.reason ?? 'unknown protocol'}.`,
        countdown: '',
        canRetry: false
      };
    case 'closed':
      return {
        label: 'Closed',
        message: 'The chat connection is closed.',
        countdown: '',
        canRetry: false
      };
  }
}
