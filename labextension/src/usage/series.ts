/**
 * Usage per day for the charts: one entry per calendar day of the window, zero where
 * nothing was used, oldest first. Pure, so it is unit-tested.
 */
import type { IUsageRow } from '../api/usage';

export interface IDayUsage {
  day: string;
  tokens: number;
  kernelMinutes: number;
  cost: number;
}

function isoDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}

/** The last `days` days up to `today` (UTC), filled from `rows` keyed by day. */
export function dailySeries(rows: readonly IUsageRow[], days: number, today: Date): IDayUsage[] {
  const byDay = new Map(rows.map(r => [r.key, r]));
  const out: IDayUsage[] = [];
  for (let i = days - 1; i >= 0; i--) {
    const date = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i));
    const day = isoDay(date);
    const row = byDay.get(day);
    out.push({
      day,
      tokens: row ? row.input_tokens + row.output_tokens : 0,
      kernelMinutes: row ? Math.round((row.kernel_seconds / 60) * 10) / 10 : 0,
      cost: row ? row.cost : 0
    });
  }
  return out;
}

/** The first day of the window, for `?since=`. */
export function windowStart(days: number, today: Date): string {
  return isoDay(new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - days + 1)));
}
