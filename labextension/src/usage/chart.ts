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

export function barChart(title: string, unit: string, bars: readonly IBar[]): HTMLElement {
  const width = 560;
  const height = 140;
  const pad = 24;
  const top = Math.max(0, ...bars.map(b => b.value));
  const max = Math.max(1, top);
  const slot = (width - pad) / Math.max(1, bars.length);
  const figure = document.createElement('figure');
  figure.className = 'aiide-Chart';
  const caption = document.createElement('figcaption');
  caption.textContent = `${title} (max ${top.toLocaleString()} ${unit})`;
  const svg = el('svg', { viewBox: `0 0 ${width} ${height + pad}`, role: 'img' });
  svg.setAttribute(
    'aria-label',
    `${title}: ` + bars.map(b => `${b.label} ${b.value.toLocaleString()} ${unit}`).join(', ')
  );
  svg.append(el('line', { x1: pad, y1: height, x2: width, y2: height, class: 'aiide-Chart-axis' }));
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
    tip.textContent = `${bar.label}: ${bar.value.toLocaleString()} ${unit}`;
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
