/**
 * Indexing progress for the progress bar: folded from the server's job events
 * (`https://events.aiide.dev/knowledge/job/v1`, on Jupyter's event bus) and from job
 * reports (`GET /aiide/api/knowledge/jobs/{id}`, the fallback when events do not come).
 *
 * Pure (no DOM, no JupyterLab): events may arrive late, twice or out of order (the
 * socket and the poll race), so a job never goes back — neither from done to running
 * nor to fewer files.
 */
import { Signal, type ISignal } from '@lumino/signaling';

export const JOB_EVENTS = 'https://events.aiide.dev/knowledge/job/v1';

export type JobStatus = 'queued' | 'running' | 'done' | 'failed';

export interface IJobProgress {
  id: string;
  user: string;
  path: string;
  trigger: string;
  status: JobStatus;
  filesDone: number;
  filesTotal: number;
  chunksAdded: number;
  chunksUpdated: number;
  chunksRemoved: number;
  errorsTotal: number;
  skippedTotal: number;
  detail: string;
}

const STATUSES: readonly string[] = ['queued', 'running', 'done', 'failed'];
const RANK: Record<JobStatus, number> = { queued: 0, running: 1, done: 2, failed: 2 };

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function count(v: unknown): number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : 0;
}

function text(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/** A job event of the event bus, or null for another schema or a malformed one. */
export function parseJobEvent(emission: unknown): IJobProgress | null {
  if (!isObject(emission) || emission.schema_id !== JOB_EVENTS) {
    return null;
  }
  const { job_id, status } = emission;
  if (typeof job_id !== 'string' || !job_id || !STATUSES.includes(status as string)) {
    return null;
  }
  return {
    id: job_id,
    user: text(emission.user),
    path: text(emission.path),
    trigger: text(emission.trigger) || 'request',
    status: status as JobStatus,
    filesDone: count(emission.files_done),
    filesTotal: count(emission.files_total),
    chunksAdded: count(emission.chunks_added),
    chunksUpdated: count(emission.chunks_updated),
    chunksRemoved: count(emission.chunks_removed),
    errorsTotal: count(emission.errors_total),
    skippedTotal: count(emission.skipped_total),
    detail: text(emission.detail)
  };
}

/** A job report of the REST API (docs/knowledge.md), or null when malformed. */
export function parseJobReport(report: unknown, user = ''): IJobProgress | null {
  if (!isObject(report)) {
    return null;
  }
  const progress = isObject(report.progress) ? report.progress : {};
  const chunks = isObject(report.chunks) ? report.chunks : {};
  return parseJobEvent({
    schema_id: JOB_EVENTS,
    job_id: report.id,
    user,
    path: report.path,
    trigger: report.trigger,
    status: report.status,
    files_done: progress.files_done,
    files_total: progress.files_total,
    chunks_added: chunks.added,
    chunks_updated: chunks.updated,
    chunks_removed: chunks.removed,
    errors_total: report.errors_total,
    skipped_total: report.skipped_total,
    detail: report.detail
  });
}

export function isFinished(job: IJobProgress): boolean {
  return job.status === 'done' || job.status === 'failed';
}

/** 0..1 for the bar; null while the number of files is not known yet. */
export function fraction(job: IJobProgress): number | null {
  if (isFinished(job)) {
    return 1;
  }
  if (job.filesTotal <= 0) {
    return null;
  }
  return Math.min(1, job.filesDone / job.filesTotal);
}

function plural(n: number, word: string): string {
  return `${n.toLocaleString()} ${word}${n === 1 ? '' : 's'}`;
}

/** What the bar says: the job in a few words, then files, chunks and errors. */
export function describeJob(job: IJobProgress): { title: string; counts: string } {
  const what = job.path || 'the workspace';
  const installing = installStep(job);
  if (installing !== null) {
    return { title: `Installing the embedding model to learn ${what}`, counts: installing };
  }
  const title =
    job.status === 'done'
      ? `Learned ${what}`
      : job.status === 'failed'
        ? `Could not learn ${what}${job.detail ? `: ${job.detail.replace(/^failed:\s*/, '')}` : ''}`
        : job.status === 'queued'
          ? `Waiting to learn ${what}`
          : job.trigger === 'save'
            ? `Updating ${what}`
            : `Learning ${what}`;
  const parts = [
    job.filesTotal > 0 ? `${job.filesDone.toLocaleString()} of ${plural(job.filesTotal, 'file')}` : null,
    job.chunksAdded + job.chunksUpdated > 0 || isFinished(job)
      ? plural(job.chunksAdded + job.chunksUpdated, 'chunk') + (isFinished(job) ? ' embedded' : '')
      : null,
    job.errorsTotal > 0 ? plural(job.errorsTotal, 'error') : null,
    job.skippedTotal > 0 ? `${job.skippedTotal.toLocaleString()} skipped` : null
  ].filter((p): p is string => p !== null);
  return { title, counts: parts.join(' · ') };
}

/**
 * While the server installs the embedding model on first use, a job waits for it and
 * says so in its detail ("waiting for the embedding model: … (step 2 of 4: …) …"):
 * the step, or '' when none is given; null when the job is not waiting.
 */
export function installStep(job: IJobProgress): string | null {
  if (job.status !== 'running' || !job.detail.startsWith(WAITING_FOR_MODEL)) {
    return null;
  }
  const step = /\((step \d+ of \d+[^)]*)\)/.exec(job.detail);
  return step ? step[1] : '';
}

const WAITING_FOR_MODEL = 'waiting for the embedding model';

export interface IJobTrackerOptions {
  /** The user whose background jobs (saves) are shown; null: only jobs started here. */
  user(): string | null;
  now?(): number;
  /** How long a finished background job stays on screen, in ms. */
  keepMs?: number;
}

export class JobTracker {
  constructor(options: IJobTrackerOptions) {
    this._options = options;
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The jobs to show, oldest first. */
  get jobs(): readonly IJobProgress[] {
    return [...this._jobs.values()];
  }

  get(id: string): IJobProgress | undefined {
    return this._jobs.get(id);
  }

  /** A job this page started (`/learn`): always shown, kept until dismissed. */
  track(job: IJobProgress): void {
    this._mine.add(job.id);
    this.apply(job);
    const early = this._early.get(job.id);
    if (early) {
      // A small job can finish before the request that started it has answered.
      this._early.delete(job.id);
      this.apply(early);
    }
  }

  /** Folds in an event or report; false when it is ignored (another user, stale). */
  apply(job: IJobProgress): boolean {
    const mine = this._mine.has(job.id);
    const user = this._options.user();
    if (!mine && (user === null || job.user !== user)) {
      this._early.set(job.id, job);
      if (this._early.size > 50) {
        this._early.delete(this._early.keys().next().value as string);
      }
      return false;
    }
    const known = this._jobs.get(job.id);
    if (known && !this._newer(known, job)) {
      return false;
    }
    if (!known && !mine && job.trigger === 'delete') {
      return false; // removing chunks of a deleted file is instant: nothing to watch
    }
    this._jobs.set(job.id, known ? { ...job, user: job.user || known.user } : job);
    if (isFinished(job)) {
      this._finishedAt.set(job.id, this._now());
    }
    this._changed.emit();
    return true;
  }

  dismiss(id: string): void {
    if (this._jobs.delete(id)) {
      this._finishedAt.delete(id);
      this._changed.emit();
    }
  }

  /** Whether a finished background job waits to be pruned (the view's timer runs). */
  get expiring(): boolean {
    return [...this._finishedAt.keys()].some(id => !this._mine.has(id));
  }

  /** Drops finished background jobs shown for long enough; true when any went. */
  prune(): boolean {
    const keep = this._options.keepMs ?? 4000;
    const now = this._now();
    let pruned = false;
    for (const [id, at] of this._finishedAt) {
      if (!this._mine.has(id) && now - at >= keep) {
        this._jobs.delete(id);
        this._finishedAt.delete(id);
        pruned = true;
      }
    }
    if (pruned) {
      this._changed.emit();
    }
    return pruned;
  }

  private _newer(known: IJobProgress, next: IJobProgress): boolean {
    if (RANK[next.status] !== RANK[known.status]) {
      return RANK[next.status] > RANK[known.status];
    }
    if (isFinished(known)) {
      return false; // the final report is final
    }
    return (
      next.filesDone > known.filesDone ||
      next.filesTotal !== known.filesTotal ||
      next.chunksAdded + next.chunksUpdated > known.chunksAdded + known.chunksUpdated ||
      next.errorsTotal > known.errorsTotal ||
      // The model install's step, while a job waits for it (the counts stay at zero).
      (next.detail !== known.detail && next.filesDone >= known.filesDone)
    );
  }

  private _now(): number {
    return this._options.now ? this._options.now() : Date.now();
  }

  private readonly _options: IJobTrackerOptions;
  private readonly _jobs = new Map<string, IJobProgress>();
  private readonly _mine = new Set<string>();
  private readonly _finishedAt = new Map<string, number>();
  /** Recent events of jobs not (yet) known as this page's: `track` may claim them. */
  private readonly _early = new Map<string, IJobProgress>();
  private readonly _changed = new Signal<this, void>(this);
}
