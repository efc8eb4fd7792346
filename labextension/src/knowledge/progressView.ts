/**
 * The indexing progress bar of the chat panel: one row per job (what, files done of
 * total, chunks, errors), hidden when nothing is being learned.
 */
import { Widget } from '@lumino/widgets';

import { button, fill, h } from '../ui/dom';
import { describeJob, fraction, isFinished, type IJobProgress, type JobTracker } from './progress';

/** How often finished background jobs are checked for removal, in ms. */
const PRUNE_MS = 1000;

export class KnowledgeProgressView extends Widget {
  constructor(tracker: JobTracker) {
    super();
    this._tracker = tracker;
    this.addClass('aiide-Learning');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'Indexing progress');
    tracker.changed.connect(this._draw, this);
    this._draw();
  }

  override dispose(): void {
    this._tracker.changed.disconnect(this._draw, this);
    this._stopTimer();
    super.dispose();
  }

  private _draw(): void {
    const jobs = this._tracker.jobs;
    this.setHidden(jobs.length === 0);
    fill(this.node, jobs.map(job => this._row(job)));
    if (this._tracker.expiring) {
      this._startTimer();
    } else {
      this._stopTimer();
    }
  }

  private _row(job: IJobProgress): HTMLElement {
    const { title, counts } = describeJob(job);
    const part = fraction(job);
    const percent = part === null ? null : Math.round(part * 100);
    const bar = h(
      'div',
      {
        class: 'aiide-Learning-bar',
        role: 'progressbar',
        'aria-label': title,
        'aria-valuemin': 0,
        'aria-valuemax': job.filesTotal || 100,
        'aria-valuenow': percent === null ? undefined : job.filesTotal ? job.filesDone : percent,
        'aria-valuetext': counts || title
      },
      h('div', { class: 'aiide-Learning-fill' })
    );
    const fillNode = bar.firstChild as HTMLElement;
    if (percent === null) {
      bar.classList.add('aiide-mod-indeterminate');
    } else {
      fillNode.style.width = `${isFinished(job) ? 100 : percent}%`;
    }
    return h(
      'div',
      {
        class: 'aiide-Learning-job',
        'data-status': job.status,
        'data-job-id': job.id,
        title: job.detail || undefined
      },
      h(
        'div',
        { class: 'aiide-Learning-head' },
        h('span', { class: 'aiide-Learning-title' }, title),
        isFinished(job)
          ? button('×', () => this._tracker.dismiss(job.id), {
              title: 'Hide',
              class: 'aiide-Learning-dismiss'
            })
          : null
      ),
      bar,
      h('div', { class: 'aiide-Learning-counts', 'aria-live': 'polite' }, counts)
    );
  }

  private _startTimer(): void {
    if (this._timer === null) {
      this._timer = window.setInterval(() => this._tracker.prune(), PRUNE_MS);
    }
  }

  private _stopTimer(): void {
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
  }

  private readonly _tracker: JobTracker;
  private _timer: number | null = null;
}
