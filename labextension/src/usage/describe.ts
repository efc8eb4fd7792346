/**
 * The assistant's status-bar item: connection state, the model in use, and the quota
 * left (from `GET /aiide/api/usage`). Pure, so it is unit-tested.
 */
import type { IConnectionStatus } from '../api/chatSocket';
import type { IQuota } from '../api/usage';
import type { INotice, IStatusView, StatusFlag } from '../status/describe';
import { momentText } from '../ui/moment';

export interface IAssistantState {
  connection: IConnectionStatus;
  /** The model picked or last used (null: the server chooses). */
  model: string | null;
  /** null: usage unknown (not loaded, or the server has no metering). */
  quotas: readonly IQuota[] | null;
  noModel: boolean;
}

const CONNECTION: Record<IConnectionStatus['state'], string> = {
  open: '●',
  connecting: '○',
  reconnecting: '◌',
  incompatible: '✕',
  closed: '✕'
};

function metricName(metric: string): string {
  return metric.replace(/_/g, ' ');
}

/** The quota closest to running out, as a fraction left, or null when there are none. */
export function tightestQuota(quotas: readonly IQuota[]): { quota: IQuota; left: number } | null {
  let best: { quota: IQuota; left: number } | null = null;
  for (const quota of quotas) {
    const left = quota.limit > 0 ? Math.max(0, quota.remaining) / quota.limit : 0;
    if (!best || left < best.left) {
      best = { quota, left };
    }
  }
  return best;
}

/** Shares of a quota used at which the student is warned (before it runs out). */
export const QUOTA_WARNINGS = [0.8, 0.95] as const;

/**
 * When a quota renews, in the reader's own time zone and named, with how long until then:
 * "Dec 8, 2026, 01:00 GMT+1 (in 5 h 20 min)". Budgets count UTC days and ISO weeks, so
 * the moment is the same for everyone; only how it is written is local.
 */
export function renewsAt(iso: string, now: Date = new Date(), locale?: string): string {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) {
    return iso;
  }
  const written = momentText(at, locale);
  const minutes = Math.max(0, Math.round((at.getTime() - now.getTime()) / 60_000));
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  const rest = minutes % 60;
  const parts = [days ? `${days} d` : '', hours ? `${hours} h` : '', !days && rest ? `${rest} min` : '']
    .filter(Boolean)
    .join(' ');
  return `${written} (in ${parts || 'under a minute'})`;
}

/** The warning (or, used up, the error) a quota calls for now; null below the first mark. */
export function quotaNotice(q: IQuota, now: Date = new Date()): INotice | null {
  if (q.limit <= 0) {
    return null;
  }
  const share = q.used / q.limit;
  const what = `${metricName(q.metric)} (${q.scope})`;
  const unit = q.metric.endsWith('tokens') ? ' tokens' : '';
  const renews = renewsAt(q.resets_at, now);
  if (q.remaining <= 0) {
    return {
      key: `quota-out\u0000${q.scope}\u0000${q.metric}`,
      type: 'error',
      message: `Your ${what} is used up: ${q.used.toLocaleString()} of ${q.limit.toLocaleString()}${unit}. The assistant is back when it renews, ${renews}.`
    };
  }
  const mark = [...QUOTA_WARNINGS].reverse().find(m => share >= m);
  if (mark === undefined) {
    return null;
  }
  return {
    key: `quota-${mark}\u0000${q.scope}\u0000${q.metric}`,
    type: 'warning',
    message: `You have used ${Math.floor(share * 100)}% of your ${what}: ${q.remaining.toLocaleString()} of ${q.limit.toLocaleString()}${unit} left until it renews, ${renews}.`
  };
}

export function describeAssistant(state: IAssistantState, now: Date = new Date()): IStatusView {
  const flags: StatusFlag[] = [];
  const parts = [`${CONNECTION[state.connection.state]} AI`];
  const lines = [`Assistant: ${state.connection.state}${state.connection.reason ? ` (${state.connection.reason})` : ''}`];
  if (state.connection.state !== 'open') {
    flags.push('unreachable');
  }
  if (state.noModel) {
    flags.push('no-model');
    parts.push('no model');
    lines.push('Model: none configured');
  } else {
    parts.push(state.model ?? 'auto');
    lines.push(`Model: ${state.model ?? 'chosen by the server'}`);
  }
  const tight = state.quotas ? tightestQuota(state.quotas) : null;
  if (tight) {
    const percent = Math.floor(tight.left * 100);
    const usedUp = tight.quota.remaining <= 0;
    parts.push(usedUp ? 'quota used up' : `${percent}% quota left`);
    if (usedUp) {
      flags.push('quota');
    } else if (1 - tight.left >= QUOTA_WARNINGS[0]) {
      flags.push('quota-low');
    }
  }
  const notices: INotice[] = [];
  for (const q of state.quotas ?? []) {
    lines.push(
      `${metricName(q.metric)} (${q.scope}): ${q.used.toLocaleString()} of ${q.limit.toLocaleString()} used, renews ${renewsAt(q.resets_at, now)}`
    );
    const notice = quotaNotice(q, now);
    if (notice) {
      notices.push(notice);
    }
  }
  lines.push('Click for usage details.');
  return { text: parts.join(' · '), title: lines.join('\n'), flags, notices };
}
