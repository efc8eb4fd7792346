/**
 * What the usage panel's tables say: usage split by feature and by model, with its cost
 * in the report's currency. Pure, so it is unit-tested.
 */
import type { IUsageReport } from '../api/usage';

/** The names users know a feature by (the gateway records the internal ones). */
const FEATURE_NAMES: Record<string, string> = {
  chat: 'Chat',
  agent: 'Chat (agent)',
  complete: 'Inline completion',
  magic: '%ai in notebooks',
  summarise: 'Conversation summaries',
  kernel: 'Sandboxed kernels',
  index: 'Knowledge indexing',
  search: 'Knowledge search'
};

export function featureName(feature: string): string {
  if (FEATURE_NAMES[feature]) {
    return FEATURE_NAMES[feature];
  }
  const words = feature.replace(/[_-]+/g, ' ').trim();
  return words ? words[0].toUpperCase() + words.slice(1) : 'Other';
}

/** A cost as money: "$0.0123", "€1.20": under one unit, four decimals (a day of chat costs cents). */
export function formatCost(cost: number, currency: string, locale?: string): string {
  const digits = cost > 0 && cost < 1 ? 4 : 2;
  try {
    return new Intl.NumberFormat(locale, {
      style: 'currency',
      currency: currency || 'USD',
      minimumFractionDigits: digits,
      maximumFractionDigits: digits
    }).format(cost);
  } catch {
    return `${cost.toFixed(digits)} ${currency}`; // a currency code Intl does not know
  }
}

export interface IBreakdownRow {
  name: string;
  tokens: number;
  /** Input tokens read from / written to the prompt cache (part of `tokens`). */
  cacheRead: number;
  cacheWrite: number;
  kernelMinutes: number;
  cost: string;
}

/** "read / written" prompt-cache tokens, or an em dash when none were cached. */
export function cachedText(r: IBreakdownRow): string {
  if (!r.cacheRead && !r.cacheWrite) {
    return '—';
  }
  return `${r.cacheRead.toLocaleString()} / ${r.cacheWrite.toLocaleString()}`;
}

/** One row per key, the largest cost first (then tokens), and a total. */
export function breakdown(
  report: IUsageReport,
  name: (key: string) => string = key => key || 'Other'
): { rows: IBreakdownRow[]; total: IBreakdownRow } {
  const sorted = [...report.rows].sort(
    (a, b) => b.cost - a.cost || b.input_tokens + b.output_tokens - (a.input_tokens + a.output_tokens)
  );
  const row = (
    label: string,
    tokens: number,
    seconds: number,
    cost: number,
    cacheRead: number,
    cacheWrite: number
  ): IBreakdownRow => ({
    name: label,
    tokens,
    cacheRead,
    cacheWrite,
    kernelMinutes: Math.round((seconds / 60) * 10) / 10,
    cost: formatCost(cost, report.currency)
  });
  const sum = (pick: (r: IUsageReport['rows'][number]) => number) =>
    report.rows.reduce((total, r) => total + pick(r), 0);
  return {
    rows: sorted.map(r =>
      row(
        name(r.key),
        r.input_tokens + r.output_tokens,
        r.kernel_seconds,
        r.cost,
        r.cache_read_tokens,
        r.cache_write_tokens
      )
    ),
    total: row(
      'Total',
      sum(r => r.input_tokens + r.output_tokens),
      sum(r => r.kernel_seconds),
      sum(r => r.cost),
      sum(r => r.cache_read_tokens),
      sum(r => r.cache_write_tokens)
    )
  };
}
