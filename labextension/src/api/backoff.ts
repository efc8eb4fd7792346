/**
 * Reconnect delays: exponential, capped, with "equal jitter" (half fixed, half random)
 * so a server restart is not met by every browser at the same instant, and no delay
 * collapses to zero.
 */

export interface IBackoffOptions {
  initialMs: number;
  maxMs: number;
  factor: number;
}

export const DEFAULT_BACKOFF: IBackoffOptions = { initialMs: 500, maxMs: 30_000, factor: 2 };

export class Backoff {
  constructor(
    options: IBackoffOptions = DEFAULT_BACKOFF,
    random: () => number = Math.random
  ) {
    this._options = options;
    this._random = random;
  }

  /** How many delays were handed out since the last reset. */
  get attempts(): number {
    return this._attempts;
  }

  /** The next delay in ms: in [ceiling / 2, ceiling), the ceiling doubling each time. */
  next(): number {
    const { initialMs, maxMs, factor } = this._options;
    const ceiling = Math.min(maxMs, initialMs * Math.pow(factor, this._attempts));
    this._attempts += 1;
    const half = ceiling / 2;
    return Math.round(half + this._random() * half);
  }

  /** After a connection that worked: start again from the shortest delay. */
  reset(): void {
    this._attempts = 0;
  }

  private readonly _options: IBackoffOptions;
  private readonly _random: () => number;
  private _attempts = 0;
}
