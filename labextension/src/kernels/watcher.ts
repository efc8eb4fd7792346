/**
 * Watches notebook sessions and, when a kernel stops or restarts, asks the server why
 * (the sandbox records OOM kills, timeouts, ... that the kernel itself cannot report).
 *
 * Dependencies are injected so this runs in unit tests without JupyterLab.
 */
import type { IDisposable } from '@lumino/disposable';
import type { ISignal } from '@lumino/signaling';

import type { IKernelEvent } from '../api/types';
import { EventLedger, shouldFetchEvents } from './ledger';

/** The part of JupyterLab's `ISessionContext` this watcher uses. */
export interface IWatchedSession {
  readonly session: { readonly kernel: { readonly id: string } | null } | null;
  readonly statusChanged: ISignal<unknown, string>;
  readonly kernelChanged: ISignal<unknown, { readonly newValue: { readonly id: string } | null }>;
  readonly disposed: ISignal<unknown, void>;
}

export interface IKernelNoticeOptions {
  fetchEvents(kernelId: string): Promise<readonly IKernelEvent[]>;
  notify(event: IKernelEvent, kernelId: string): void;
  log?(message: string, error: unknown): void;
  /**
   * When to ask after a status change. The server may record a death a moment after
   * the restart begins, so ask again a little later; the ledger drops repeats.
   */
  delaysMs?: readonly number[];
  schedule?(callback: () => void, ms: number): void;
}

export const DEFAULT_DELAYS_MS: readonly number[] = [0, 1500, 5000];

export class KernelNoticeWatcher implements IDisposable {
  constructor(options: IKernelNoticeOptions) {
    this._options = options;
    this._delays = options.delaysMs ?? DEFAULT_DELAYS_MS;
    this._schedule = options.schedule ?? ((cb, ms) => void setTimeout(cb, ms));
    this._log = options.log ?? ((message, error) => console.warn(message, error));
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Starts watching one session context (a notebook's); stops when it is disposed. */
  watch(context: IWatchedSession): void {
    if (this._isDisposed || this._watched.has(context)) {
      return;
    }
    this._watched.add(context);
    context.statusChanged.connect(this._onStatus, this);
    context.kernelChanged.connect(this._onKernel, this);
    context.disposed.connect(this._onDisposed, this);
    const kernel = context.session?.kernel;
    if (kernel) {
      this._baseline(kernel.id);
    }
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    for (const context of this._watched) {
      this._disconnect(context);
    }
    this._watched.clear();
  }

  private _disconnect(context: IWatchedSession): void {
    context.statusChanged.disconnect(this._onStatus, this);
    context.kernelChanged.disconnect(this._onKernel, this);
    context.disposed.disconnect(this._onDisposed, this);
  }

  private _onDisposed(sender: unknown): void {
    const context = sender as IWatchedSession;
    this._disconnect(context);
    this._watched.delete(context);
  }

  private _onKernel(_: unknown, args: { readonly newValue: { readonly id: string } | null }): void {
    if (args.newValue) {
      this._baseline(args.newValue.id);
    }
  }

  private _onStatus(sender: unknown, status: string): void {
    if (!shouldFetchEvents(status)) {
      return;
    }
    const kernelId = (sender as IWatchedSession).session?.kernel?.id;
    if (!kernelId) {
      return;
    }
    this._triggered.add(kernelId);
    if ((this._pending.get(kernelId) ?? 0) > 0) {
      return; // a burst of checks for this kernel is already under way
    }
    for (const ms of this._delays) {
      this._pending.set(kernelId, (this._pending.get(kernelId) ?? 0) + 1);
      this._schedule(() => {
        void this._check(kernelId).finally(() => {
          this._pending.set(kernelId, (this._pending.get(kernelId) ?? 1) - 1);
        });
      }, ms);
    }
  }

  /** Marks what the server already knows about a newly seen kernel as history. */
  private _baseline(kernelId: string): void {
    if (this._baselined.has(kernelId)) {
      return;
    }
    this._baselined.add(kernelId);
    this._options.fetchEvents(kernelId).then(
      events => {
        if (this._triggered.has(kernelId)) {
          // The kernel stopped while we were asking: these may be news.
          this._report(kernelId, events);
        } else {
          this._ledger.baseline(kernelId, events);
        }
      },
      error => this._log(`aiide: could not read events of kernel ${kernelId}`, error)
    );
  }

  private async _check(kernelId: string): Promise<void> {
    if (this._isDisposed) {
      return;
    }
    try {
      this._report(kernelId, await this._options.fetchEvents(kernelId));
    } catch (error) {
      this._log(`aiide: could not read events of kernel ${kernelId}`, error);
    }
  }

  private _report(kernelId: string, events: readonly IKernelEvent[]): void {
    for (const event of this._ledger.fresh(kernelId, events)) {
      try {
        this._options.notify(event, kernelId);
      } catch (error) {
        this._log('aiide: could not show a kernel notice', error);
      }
    }
  }

  private readonly _options: IKernelNoticeOptions;
  private readonly _delays: readonly number[];
  private readonly _schedule: (callback: () => void, ms: number) => void;
  private readonly _log: (message: string, error: unknown) => void;
  private readonly _ledger = new EventLedger();
  private readonly _watched = new Set<IWatchedSession>();
  private readonly _baselined = new Set<string>();
  private readonly _triggered = new Set<string>();
  private readonly _pending = new Map<string, number>();
  private _isDisposed = false;
}
