/** A small bar chart (SVG, theme colours, with a text alternative for screen readers). */
const SVG = 'http://www.w3.org/2000/svg';

export interface IBar {
  label: string;
  value: number;
}

function el<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    node.setAttribute(k, String(v));
  }
  return node;
}

/**
 * `unit` follows each value ("tokens", "min"); `format` writes a value (default: the
 * reader's number format), e.g. as money.
 */
export function barChart(
  title: string,
  unit: string,
  bars: readonly IBar[],
  format: (value: number) => string = value => value.toLocaleString()
): HTMLElement {
  const width = 560;
  const height = 140;
  const pad = 24; // room for the axes' labels
  const top = Math.max(0, ...bars.map(b => b.value));
  const max = top > 0 ? top : 1; // fractions too (a day of chat costs cents)
  const slot = (width - pad) / Math.max(1, bars.length);
  const figure = document.createElement('figure');
  figure.className = 'aiide-Chart';
  const caption = document.createElement('figcaption');
  caption.textContent = `${title} (max ${format(top)} ${unit})`.replace(/ \)$/, ')');
  const svg = el('svg', { viewBox: `0 0 ${width} ${height + pad + 14}`, role: 'img' });
  svg.setAttribute(
    'aria-label',
    `${title}: ` + bars.map(b => `${b.label} ${format(b.value)} ${unit}`.trimEnd()).join(', ')
  );
  svg.append(el('line', { x1: pad, y1: height, x2: width, y2: height, class: 'aiide-Chart-axis' }));
  svg.append(el('line', { x1: pad, y1: 8, x2: pad, y2: height, class: 'aiide-Chart-axis' }));
  // Axis labels: the scale's top and its unit on the y axis, the days on the x axis.
  const yLabel = el('text', { x: pad + 4, y: 10, class: 'aiide-Chart-label aiide-Chart-yLabel' });
  yLabel.textContent = `${format(top)} ${unit}`.trimEnd();
  const xLabel = el('text', {
    x: width,
    y: height + pad + 10,
    'text-anchor': 'end',
    class: 'aiide-Chart-label aiide-Chart-xLabel'
  });
  xLabel.textContent = 'day (UTC)';
  svg.append(yLabel, xLabel);
  bars.forEach((bar, i) => {
    const h = (bar.value / max) * (height - 8);
    const rect = el('rect', {
      x: pad + i * slot + slot * 0.15,
      y: height - h,
      width: slot * 0.7,
      height: h,
      class: 'aiide-Chart-bar'
    });
    const tip = el('title', {});
    tip.textContent = `${bar.label}: ${format(bar.value)} ${unit}`.trimEnd();
    rect.append(tip);
    svg.append(rect);
    if (bars.length <= 14 || i % Math.ceil(bars.length / 7) === 0) {
      const text = el('text', {
        x: pad + i * slot + slot / 2,
        y: height + 16,
        'text-anchor': 'middle',
        class: 'aiide-Chart-label'
      });
      text.textContent = bar.label.slice(5);
      svg.append(text);
    }
  });
  figure.append(caption, svg);
  return figure;
}
