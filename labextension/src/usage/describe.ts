/**
 * The assistant's status-bar item: connection state, the model in use, and the quota
 * left (from `GET /aiide/api/usage`). Pure, so it is unit-tested.
 */
import type { IConnectionStatus } from '../api/chatSocket';
import type { IQuota } from '../api/usage';
import type { IStatusView, StatusFlag } from '../status/describe';

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

export function describeAssistant(state: IAssistantState): IStatusView {
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
    parts.push(percent === 0 ? 'quota used up' : `${percent}% quota left`);
    if (percent === 0) {
      flags.push('quota');
    }
  }
  for (const q of state.quotas ?? []) {
    lines.push(
      `${metricName(q.metric)} (${q.scope}): ${q.used.toLocaleString()} of ${q.limit.toLocaleString()} used, resets ${new Date(q.resets_at).toLocaleString()}`
    );
  }
  lines.push('Click for usage details.');
  return { text: parts.join(' · '), title: lines.join('\n'), flags, notices: [] };
}
