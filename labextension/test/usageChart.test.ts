import './dom';

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { barChart } from '../src/usage/chart';

describe('usage bar chart', () => {
  test('the largest bar fills the chart whatever its scale, with labelled axes', () => {
    const money = (v: number) => `$${v.toFixed(4)}`;
    const figure = barChart('Cost per day', '', [
      { label: '2026-12-06', value: 0.0018 },
      { label: '2026-12-07', value: 0.0036 }
    ], money);
    const heights = [...figure.querySelectorAll('rect')].map(r => Number(r.getAttribute('height')));
    assert.equal(heights[1], 132); // a fraction of a cent is no reason for a flat chart
    assert.equal(heights[0], 66);
    assert.equal(figure.querySelector('figcaption')?.textContent, 'Cost per day (max $0.0036)');
    assert.equal(figure.querySelector('.aiide-Chart-yLabel')?.textContent, '$0.0036');
    assert.equal(figure.querySelector('.aiide-Chart-xLabel')?.textContent, 'day (UTC)');
    assert.match(figure.querySelector('svg')?.getAttribute('aria-label') ?? '', /2026-12-07 \$0\.0036/);
  });
});
