/**
 * How a fix loop reads in the chat: each attempt one compact step (the error → the
 * change → the result), and the end as "Verified" or "Not verified: why", with one
 * "Undo fix" for every attempt's change. Cells are named as the user sees them (cell 3),
 * never by id.
 */
import { button, h } from '../ui/dom';
import type { ICellView } from '../notebook/bridge';
import type { Block } from './transcript';

type FixStep = Extract<Block, { kind: 'fixStep' }>;
type FixEnd = Extract<Block, { kind: 'fixEnd' }>;

/** What each attempt's result reads as. */
const RESULT_TEXT: Record<string, string> = {
  verified: 'verified',
  error: 'still failing',
  broke_downstream: 'broke a later cell',
  check_failed: 'a check failed',
  timeout: 'a cell did not finish',
  no_patch: 'no change proposed',
  repeated_patch: 'the same change again',
  patch_rejected: 'change rejected',
  cancelled: 'stopped',
  model_failed: 'the model failed',
  kernel_failed: 'the kernel failed'
};

/** `cell 3` for a cell id of the notebook; ids in free text become names too. */
export function cellNamer(cells: readonly ICellView[]): {
  name(cellId: string): string;
  text(text: string): string;
} {
  const names = new Map(cells.map(c => [c.id, `cell ${c.position}`]));
  const ids = [...names.keys()].sort((a, b) => b.length - a.length);
  return {
    name: id => names.get(id) ?? 'a new cell',
    text: text =>
      ids.reduce((out, id) => out.split(`cell ${id}`).join(names.get(id)!).split(id).join(names.get(id)!), text)
  };
}

function changeText(step: FixStep, name: (id: string) => string): string {
  if (!step.patch.length) {
    return 'no change';
  }
  const verbs = { replace: 'changed', insert: 'inserted', delete: 'deleted' } as const;
  return step.patch.map(p => `${verbs[p.op]} ${name(p.cell_id)}`).join(', ');
}

export function renderFixStep(step: FixStep, cells: readonly ICellView[]): HTMLElement {
  const namer = cellNamer(cells);
  const error = `${namer.name(step.error.cell_id)}: ${step.error.ename}${step.error.evalue ? `: ${step.error.evalue}` : ''}`;
  const ok = step.result === 'verified';
  return h(
    'div',
    { class: 'aiide-FixStep', 'data-result': step.result, role: 'group', 'aria-label': `Fix attempt ${step.number}` },
    h('span', { class: 'aiide-FixStep-number' }, `Attempt ${step.number}`),
    h('span', { class: 'aiide-FixStep-error', title: 'The error it worked on' }, error),
    h('span', { class: 'aiide-FixStep-arrow' }, ' → '),
    h(
      'details',
      { class: 'aiide-FixStep-change' },
      h('summary', {}, changeText(step, namer.name)),
      step.patch.map(p =>
        h(
          'div',
          { class: 'aiide-FixStep-cell' },
          p.before !== null ? h('pre', { class: 'aiide-FixStep-before' }, p.before) : null,
          p.after !== null ? h('pre', { class: 'aiide-FixStep-after' }, p.after) : null
        )
      )
    ),
    h('span', { class: 'aiide-FixStep-arrow' }, ' → '),
    h(
      'span',
      { class: ok ? 'aiide-FixStep-result aiide-mod-ok' : 'aiide-FixStep-result', title: namer.text(step.detail) },
      RESULT_TEXT[step.result] ?? step.result
    ),
    !ok && step.detail ? h('div', { class: 'aiide-FixStep-detail' }, namer.text(step.detail)) : null
  );
}

export function renderFixEnd(
  end: FixEnd,
  cells: readonly ICellView[],
  undo: ((end: FixEnd) => void) | null
): HTMLElement {
  const namer = cellNamer(cells);
  const verified = end.status === 'verified';
  const head = verified ? 'Verified' : `Not verified: ${namer.text(end.message)}`;
  const said = namer.text(end.message).replace(/^verified:\s*/, '');
  const tail = verified && said ? ` — ${said}` : '';
  return h(
    'div',
    { class: 'aiide-FixEnd', 'data-status': end.status, 'data-reason': end.reason, role: 'status' },
    h('strong', { class: 'aiide-FixEnd-verdict' }, head),
    tail ? h('span', { class: 'aiide-FixEnd-message' }, tail) : null,
    h(
      'span',
      { class: 'aiide-FixEnd-attempts' },
      ` · ${end.attempts} attempt${end.attempts === 1 ? '' : 's'}`
    ),
    end.undo === 'available' && undo
      ? h(
          'div',
          { class: 'aiide-FixEnd-actions' },
          button('Undo fix', () => undo(end), {
            title: "Take back every attempt's change to the notebook"
          })
        )
      : null,
    end.undoNote ? h('div', { class: 'aiide-FixEnd-undo', role: 'status' }, end.undoNote) : null
  );
}
