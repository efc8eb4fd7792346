/**
 * The dashboard's chart: tokens per day, stacked by student, drawn as SVG by hand (a few
 * rectangles do not need a charting library). Names go in as text nodes; theme colours
 * come from CSS classes; a text alternative lists every figure for screen readers.
 */
import { h } from '../ui/dom';
import { type IStackedDays, stackLayout } from './model';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 640;
const HEIGHT = 160;
const PAD_LEFT = 44;
const PAD_BOTTOM = 20;

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>,
  text?: string
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    node.setAttribute(k, String(v));
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function seriesClass(i: number): string {
  return `aiide-Instructor-series aiide-Instructor-series-${i % 6}`;
}

/** The number on the axis: 12k, 1.5M. */
export function shortNumber(n: number): string {
  if (n >= 1_000_000) {
    return `${Math.round(n / 100_000) / 10}M`;
  }
  if (n >= 1_000) {
    return `${Math.round(n / 100) / 10}k`;
  }
  return String(n);
}

export function stackedChart(title: string, data: IStackedDays): HTMLElement {
  const plotW = WIDTH - PAD_LEFT;
  const top = Math.max(0, ...data.days.map(d => d.total));
  const figure = h('figure', { class: 'aiide-Chart aiide-Instructor-chart' });
  const caption = h('figcaption', {}, `${title} (max ${top.toLocaleString()} tokens a day)`);
  const root = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT + PAD_BOTTOM}`, role: 'img' });
  const described = data.days
    .filter(d => d.total > 0)
    .map(
      d =>
        `${d.day}: ` +
        d.values
          .map((v, i) => (v > 0 ? `${data.series[i]} ${v.toLocaleString()}` : ''))
          .filter(Boolean)
          .join(', ')
    );
  root.setAttribute(
    'aria-label',
    `${title}: ${described.length ? described.join('; ') : 'no use in this period'}`
  );
  root.append(
    svg('line', { x1: PAD_LEFT, y1: HEIGHT, x2: WIDTH, y2: HEIGHT, class: 'aiide-Chart-axis' }),
    svg('text', { x: PAD_LEFT - 4, y: 10, 'text-anchor': 'end', class: 'aiide-Chart-label' }, shortNumber(top)),
    svg('text', { x: PAD_LEFT - 4, y: HEIGHT, 'text-anchor': 'end', class: 'aiide-Chart-label' }, '0')
  );
  const plot = svg('g', { transform: `translate(${PAD_LEFT} 0)` });
  for (const r of stackLayout(data, plotW, HEIGHT - 8)) {
    const rect = svg('rect', {
      x: r.x,
      y: r.y + 8,
      width: r.width,
      height: r.height,
      class: seriesClass(r.series)
    });
    rect.append(svg('title', {}, `${r.day} · ${data.series[r.series]}: ${r.value.toLocaleString()} tokens`));
    plot.append(rect);
  }
  const slot = plotW / Math.max(1, data.days.length);
  const every = Math.ceil(data.days.length / 10);
  data.days.forEach((d, i) => {
    if (i % every === 0 || i === data.days.length - 1) {
      plot.append(
        svg(
          'text',
          { x: i * slot + slot / 2, y: HEIGHT + 14, 'text-anchor': 'middle', class: 'aiide-Chart-label' },
          d.day.slice(5)
        )
      );
    }
  });
  root.append(plot);
  const legend = h(
    'ul',
    { class: 'aiide-Instructor-legend', 'aria-hidden': 'true' },
    data.series.map((name, i) =>
      h('li', {}, h('span', { class: `aiide-Instructor-swatch ${seriesClass(i)}` }), name)
    )
  );
  figure.append(caption, root);
  if (data.series.length) {
    figure.append(legend);
  }
  return figure;
}
