/**
 * The text of one completion while the server streams it: the newest view not yet shown
 * (each view replaces the one before — only the latest matters to the editor), and how
 * the answer ended.
 */
export interface IGhostTextOutcome {
  completion?: string;
  error?: unknown;
}

export class GhostText {
  /** Resolves when the answer has ended, either way. */
  readonly settled: Promise<void>;

  constructor() {
    this.settled = new Promise(resolve => {
      this._settle = resolve;
    });
  }

  /** The last text handed out by `take`. */
  get shown(): string {
    return this._shown;
  }

  get ended(): boolean {
    return this._outcome !== null;
  }

  get outcome(): IGhostTextOutcome | null {
    return this._outcome;
  }

  push(text: string): void {
    this._latest = text;
    this._notify();
  }

  end(completion: string): void {
    this._finish({ completion });
  }

  fail(error: unknown): void {
    this._finish({ error });
  }

  /** Waits until there is a text not yet taken, or the end. */
  async next(): Promise<void> {
    while (this._latest === null && this._outcome === null) {
      await new Promise<void>(resolve => {
        this._wake = resolve;
      });
    }
  }

  /** The newest text not yet taken (`null` if none). */
  take(): string | null {
    const text = this._latest;
    this._latest = null;
    if (text !== null) {
      this._shown = text;
    }
    return text;
  }

  private _finish(outcome: IGhostTextOutcome): void {
    if (this._outcome === null) {
      this._outcome = outcome;
      this._settle();
      this._notify();
    }
  }

  private _notify(): void {
    const wake = this._wake;
    this._wake = null;
    wake?.();
  }

  private _latest: string | null = null;
  private _shown = '';
  private _outcome: IGhostTextOutcome | null = null;
  private _wake: (() => void) | null = null;
  private _settle: () => void = () => undefined;
}
