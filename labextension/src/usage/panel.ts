/**
 * The usage panel: quota left; tokens, kernel time and cost by feature and by model; and
 * per day for the last weeks (`GET /aiide/api/usage?by=day|feature|model`). Says plainly
 * when usage cannot be read.
 */
import type { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { describeFailure } from '../api/failure';
import { fetchUsage, type IUsageReport } from '../api/usage';
import { button, fill, h } from '../ui/dom';
import { breakdown, cachedText, featureName, formatCost, type IBreakdownRow } from './breakdown';
import { barChart } from './chart';
import { quotaNotice, renewsAt } from './describe';
import { dailySeries, windowStart } from './series';

export const USAGE_DAYS = 14;

export class UsagePanel extends Widget {
  constructor(settings: ServerConnection.ISettings) {
    super();
    this._settings = settings;
    this.id = 'aiide-usage';
    this.addClass('aiide-Usage');
    this.title.label = 'AI Usage';
    this.title.closable = true;
  }

  async refresh(): Promise<void> {
    fill(this.node, h('p', { role: 'status' }, 'Loading usage…'));
    let report: IUsageReport;
    let byFeature: IUsageReport;
    let byModel: IUsageReport;
    const since = windowStart(USAGE_DAYS, new Date());
    try {
      [report, byFeature, byModel] = await Promise.all([
        fetchUsage(this._settings, 'day', since),
        fetchUsage(this._settings, 'feature', since),
        fetchUsage(this._settings, 'model', since)
      ]);
    } catch (error) {
      fill(
        this.node,
        h('p', { class: 'aiide-Usage-error', role: 'alert' }, describeFailure(error).message),
        button('Retry', () => void this.refresh())
      );
      return;
    }
    const now = new Date();
    const days = dailySeries(report.rows, USAGE_DAYS, now);
    const warnings = report.quotas.map(q => quotaNotice(q, now)).filter(n => n !== null);
    fill(
      this.node,
      h('h2', {}, 'Assistant usage'),
      warnings.map(n =>
        h('p', { class: `aiide-Usage-notice aiide-Usage-notice-${n.type}`, role: 'alert' }, n.message)
      ),
      report.quotas.length
        ? h(
            'table',
            { class: 'aiide-Usage-quotas' },
            h('caption', {}, 'Your budget and quotas'),
            h('tr', {}, h('th', {}, 'Quota'), h('th', {}, 'Used'), h('th', {}, 'Left'), h('th', {}, 'Renews')),
            report.quotas.map(q =>
              h(
                'tr',
                {},
                h('td', {}, `${q.metric.replace(/_/g, ' ')} (${q.scope})`),
                h('td', {}, h('meter', {
                    min: 0,
                    max: q.limit,
                    value: q.used,
                    low: q.limit * 0.7,
                    high: q.limit * 0.9,
                    optimum: 0,
                    'aria-label': `${q.metric} used`
                  }), ` ${q.used.toLocaleString()} / ${q.limit.toLocaleString()}`),
                h('td', {}, q.remaining.toLocaleString()),
                h('td', {}, renewsAt(q.resets_at, now))
              )
            )
          )
        : h('p', {}, 'No budget or quota applies to you.'),
      breakdownTable(`By feature, last ${USAGE_DAYS} days`, 'Feature', breakdown(byFeature, featureName)),
      breakdownTable(`By model, last ${USAGE_DAYS} days`, 'Model', breakdown(byModel)),
      barChart(`Tokens per day, last ${USAGE_DAYS} days`, 'tokens', days.map(d => ({ label: d.day, value: d.tokens }))),
      barChart(
        `Cost per day, last ${USAGE_DAYS} days`,
        '',
        days.map(d => ({ label: d.day, value: d.cost })),
        value => formatCost(value, report.currency)
      ),
      barChart(
        `Kernel time per day, last ${USAGE_DAYS} days`,
        'min',
        days.map(d => ({ label: d.day, value: d.kernelMinutes }))
      ),
      button('Refresh', () => void this.refresh())
    );
  }

  private readonly _settings: ServerConnection.ISettings;
}

/** Tokens, kernel time and cost per feature or model, with their total. */
function breakdownTable(
  caption: string,
  heading: string,
  { rows, total }: ReturnType<typeof breakdown>
): HTMLElement {
  if (!rows.length) {
    return h('p', { class: 'aiide-Usage-none' }, `${caption}: nothing used yet.`);
  }
  const line = (r: IBreakdownRow, cell: 'td' | 'th') =>
    h(
      'tr',
      {},
      h(cell, {}, r.name),
      h('td', {}, r.tokens.toLocaleString()),
      h('td', { title: 'Input tokens read from / written to the prompt cache, each priced apart' }, cachedText(r)),
      h('td', {}, r.kernelMinutes.toLocaleString()),
      h('td', {}, r.cost)
    );
  return h(
    'table',
    { class: 'aiide-Usage-breakdown' },
    h('caption', {}, caption),
    h(
      'tr',
      {},
      h('th', {}, heading),
      h('th', {}, 'Tokens'),
      h('th', {}, 'Cached (read / written)'),
      h('th', {}, 'Kernel min'),
      h('th', {}, 'Cost')
    ),
    rows.map(r => line(r, 'td')),
    line(total, 'th')
  );
}
