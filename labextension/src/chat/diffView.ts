/** The diff of a notebook patch, as the approval card shows it. */
import type { IPatch } from '../api/protocol';
import { h } from '../ui/dom';
import type { CellNamer } from './describeCall';
import { patchDiff, type RowKind } from './diffRows';

const MARK: Record<RowKind, string> = { add: '+', del: '-', ctx: ' ', fold: '⋯' };
const SPOKEN: Record<RowKind, string> = {
  add: 'added',
  del: 'removed',
  ctx: 'unchanged',
  fold: 'folded'
};

export function renderPatchDiff(patch: IPatch, names?: CellNamer): HTMLElement {
  return h(
    'div',
    { class: 'aiide-Diff', 'aria-label': `Proposed change to ${patch.path}`, role: 'group' },
    patchDiff(patch, names).map(op =>
      h(
        'div',
        { class: 'aiide-Diff-op' },
        h('div', { class: 'aiide-Diff-title' }, `${patch.path}: ${op.title}`),
        op.rows.length
          ? h(
              'pre',
              { class: 'aiide-Diff-body' },
              op.rows.map(row =>
                h(
                  'div',
                  { class: `aiide-Diff-row aiide-Diff-${row.kind}` },
                  h('span', { class: 'aiide-Diff-mark', 'aria-hidden': 'true' }, MARK[row.kind]),
                  h('span', { class: 'aiide-u-srOnly' }, `${SPOKEN[row.kind]}: `),
                  row.text || ' '
                )
              )
            )
          : null
      )
    )
  );
}
