/**
 * Client for `GET /aiide/api/usage` (the gateway's metering): one's own usage grouped
 * by day or model, and the remaining quota. Only the fields the UI shows are checked.
 */
import type { ServerConnection } from '@jupyterlab/services';

import { field, isNumber, isString, listField, objectBody } from './json';
import { requestAPI } from './request';

const WHAT = 'usage';

export interface IQuota {
  scope: string;
  metric: string;
  limit: number;
  used: number;
  remaining: number;
  resets_at: string;
}

export interface IUsageRow {
  /** The value grouped on (a day "YYYY-MM-DD", a model name, …). */
  key: string;
  input_tokens: number;
  output_tokens: number;
  /** Of the input tokens, those read from / written to the provider's prompt cache
   * (priced apart); 0 from a server that does not report them. */
  cache_read_tokens: number;
  cache_write_tokens: number;
  kernel_seconds: number;
  cost: number;
}

export interface IUsageReport {
  by: string;
  currency: string;
  rows: IUsageRow[];
  quotas: IQuota[];
}

export function parseUsage(data: unknown): IUsageReport {
  const body = objectBody(data, WHAT);
  const by = field(body, 'by', isString, WHAT, '$');
  return {
    by,
    currency: typeof body.currency === 'string' ? body.currency : '',
    rows: listField(body, 'rows', WHAT, '$', (raw, path) => ({
      key: String(raw[by] ?? ''),
      input_tokens: field(raw, 'input_tokens', isNumber, WHAT, path),
      output_tokens: field(raw, 'output_tokens', isNumber, WHAT, path),
      cache_read_tokens: raw.cache_read_tokens === undefined ? 0 : field(raw, 'cache_read_tokens', isNumber, WHAT, path),
      cache_write_tokens:
        raw.cache_write_tokens === undefined ? 0 : field(raw, 'cache_write_tokens', isNumber, WHAT, path),
      kernel_seconds: field(raw, 'kernel_seconds', isNumber, WHAT, path),
      cost: field(raw, 'cost', isNumber, WHAT, path)
    })),
    quotas: Array.isArray(body.quotas)
      ? listField(body, 'quotas', WHAT, '$', (raw, path) => ({
          scope: field(raw, 'scope', isString, WHAT, path),
          metric: field(raw, 'metric', isString, WHAT, path),
          limit: field(raw, 'limit', isNumber, WHAT, path),
          used: field(raw, 'used', isNumber, WHAT, path),
          remaining: field(raw, 'remaining', isNumber, WHAT, path),
          resets_at: field(raw, 'resets_at', isString, WHAT, path)
        }))
      : []
  };
}

/** One's own usage, grouped `by` day (default), model or feature, since an ISO date. */
export async function fetchUsage(
  settings: ServerConnection.ISettings,
  by: 'day' | 'model' | 'feature' = 'day',
  since?: string
): Promise<IUsageReport> {
  const query = new URLSearchParams({ by });
  if (since) {
    query.set('since', since);
  }
  return parseUsage(await requestAPI(`usage?${query.toString()}`, settings));
}
