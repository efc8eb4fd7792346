/**
 * Which kernel events the user has already been told about. Pure, so it is unit-tested.
 */
import type { IKernelEvent } from '../api/types';

/** Kernel statuses after which the server may have recorded why the kernel stopped. */
export const NOTICE_STATUSES: ReadonlySet<string> = new Set([
  'autorestarting',
  'restarting',
  'dead'
]);

export function shouldFetchEvents(status: string): boolean {
  return NOTICE_STATUSES.has(status);
}

/** Events are identified by kernel, time and message (the server has no event ids). */
export function eventKey(kernelId: string, event: IKernelEvent): string {
  return `${kernelId}\u0000${event.time}\u0000${event.message}`;
}

export class EventLedger {
  private readonly _seen = new Set<string>();

  /**
   * Records events as known without reporting them: what happened before this page
   * started watching a kernel is history, not news (e.g. after a page reload).
   */
  baseline(kernelId: string, events: readonly IKernelEvent[]): void {
    for (const event of events) {
      this._seen.add(eventKey(kernelId, event));
    }
  }

  /** The events not reported (or baselined) before, in server order; marks them reported. */
  fresh(kernelId: string, events: readonly IKernelEvent[]): IKernelEvent[] {
    const result: IKernelEvent[] = [];
    for (const event of events) {
      const key = eventKey(kernelId, event);
      if (!this._seen.has(key)) {
        this._seen.add(key);
        result.push(event);
      }
    }
    return result;
  }

  get size(): number {
    return this._seen.size;
  }
}
