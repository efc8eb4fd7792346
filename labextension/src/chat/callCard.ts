/**
 * One tool call of the agent, as a card: what it will do, its risk, the diff of a
 * notebook edit (or the code a run will run), and — while it waits — Approve / Edit /
 * Reject (with a reason). Then its notebook request (Apply / Undo) and its result.
 *
 * Cells are named as the user sees them (position and first line, the names fixed when
 * the card first saw them), and the card shows the notebook's target cell when it asks
 * and when its header is clicked. After approval it shows what was done: the arguments
 * and patch as the user edited them, and whether the notebook still holds the change.
 *
 * The card keeps the user's half-typed edits and reason across redraws.
 */
import { citationList, type ICitationLinks } from '../knowledge/citations';
import { button, fill, h } from '../ui/dom';
import type { IPatch, Risk } from '../api/protocol';
import type { ICodeField, INotebookActions } from '../notebook/bridge';
import { CODE_ARGUMENTS, fromForm, isEdited, toForm, type IArgumentForm } from './args';
import { NOT_SANDBOXED } from '../notebook/sandbox';
import { cellName, describeCall, noNotebook, type CellNamer } from './describeCall';
import { patchDiff } from './diffRows';
import { renderPatchDiff } from './diffView';
import type { Block, INotebookRequest } from './transcript';

export type CallBlock = Extract<Block, { kind: 'call' }>;

export interface ICallHandlers {
  /** Each returns false when the decision could not be sent. */
  approve(block: CallBlock, edited: Record<string, unknown> | null): boolean;
  reject(block: CallBlock, reason: string): boolean;
  /** Apply / run a notebook request that waits for the user. */
  confirm(requestId: string): void;
  refuse(requestId: string, reason: string): void;
  undo(requestId: string): void;
  /** Apply a conflicted patch over the notebook's changes (after seeing both versions). */
  applyAnyway?(requestId: string): void;
  /** Switch the notebook (null: the current one) to the sandboxed kernel. */
  switchToSandbox(path: string | null): Promise<void>;
  /** The open notebooks: names of their cells, showing a cell, code editors. */
  notebooks?: Pick<INotebookActions, 'cells' | 'reveal' | 'codeField' | 'preview'>;
}

/** Changed lines from which an edit is also shown in the notebook, not only on the card. */
export const LARGE_EDIT_LINES = 8;

function isLarge(patch: IPatch): boolean {
  const changed = patchDiff(patch).flatMap(op => op.rows).filter(r => r.kind === 'add' || r.kind === 'del');
  return changed.length >= LARGE_EDIT_LINES;
}

/** The badge, least risky first (docs/agent.md); older runs say low / medium / high. */
const RISK_TITLE: Record<Risk, string> = {
  read: 'Reads only',
  edit: 'Changes the notebook (undo takes it back)',
  run: 'Runs code in the sandboxed kernel',
  write: 'Writes or deletes content',
  network: 'Runs code with the network or outside the sandbox',
  low: 'Low risk',
  medium: 'Medium risk',
  high: 'High risk'
};

type Mode = 'idle' | 'editing' | 'rejecting' | 'sent';

function firstLine(text: string): string {
  const line = text.split('\n').find(l => l.trim() && !/^-+$/.test(l.trim())) ?? text;
  return line.length > 100 ? `${line.slice(0, 100)}…` : line;
}

/** A one-line box, or a multi-line one for text. */
function textField(value: string, onChange: (text: string) => void, multiline = false): HTMLElement {
  const oninput = (e: Event): void =>
    onChange((e.target as HTMLInputElement | HTMLTextAreaElement).value);
  return multiline || value.includes('\n')
    ? h(
        'textarea',
        {
          rows: Math.min(12, Math.max(2, value.split('\n').length)),
          spellcheck: 'false',
          oninput
        },
        value
      )
    : h('input', { type: 'text', spellcheck: 'false', value, oninput });
}

/** The editor language of a file the agent writes. */
function languageOf(path: string): string {
  const ext = path.split('.').pop()?.toLowerCase() ?? '';
  const known: Record<string, string> = {
    py: 'python', md: 'markdown', json: 'json', js: 'javascript', ts: 'typescript',
    sql: 'sql', r: 'r', yaml: 'yaml', yml: 'yaml', sh: 'shell', csv: 'text'
  };
  return known[ext] ?? 'text';
}

function countdown(expiresAt: number): string {
  const seconds = Math.max(0, Math.round(expiresAt - Date.now() / 1000));
  const m = Math.floor(seconds / 60);
  return `expires in ${m}:${String(seconds % 60).padStart(2, '0')}`;
}

export class CallCard {
  constructor(handlers: ICallHandlers, links: ICitationLinks | null = null) {
    this._handlers = handlers;
    this._links = links;
    this.node = h('section', { class: 'aiide-Call' });
  }

  readonly node: HTMLElement;

  /** Redraws for `block`; `awaiting`: its run is paused on this approval right now. */
  update(block: CallBlock, awaiting: boolean): void {
    const waiting = awaiting && block.approval !== null && block.approval.resolution === null;
    if (!waiting) {
      this._mode = 'idle';
      this._stopTimer();
      this._hidePreview();
    } else if (block.approval?.patch && !this._preview && isLarge(block.approval.patch)) {
      // A larger edit is also shown where it lands, in the notebook, while it waits.
      this._preview = this._handlers.notebooks?.preview?.(block.approval.patch) ?? null;
    }
    this._block = block;
    const n = this.node;
    n.dataset.risk = block.risk;
    n.dataset.state = waiting ? 'awaiting' : this._state(block);
    n.setAttribute('aria-label', `Tool call ${block.name}, ${block.risk} risk`);
    const names = this._namer(block);
    const edited = block.approval?.resolution?.edited === true;
    // What was sent to the notebook (the user's edit included) over what was proposed.
    const patch = block.request?.patch ?? (edited ? null : block.approval?.patch) ?? null;
    const target = this._target(block);
    this._disposeFields();
    fill(
      n,
      h(
        'header',
        { class: 'aiide-Call-header' },
        h('span', { class: 'aiide-Call-risk', title: RISK_TITLE[block.risk] ?? '' }, block.risk),
        h(
          'span',
          {
            class: 'aiide-Call-what',
            ...(target
              ? {
                  'data-reveal': 'true',
                  title: 'Show this cell in the notebook',
                  onclick: () => this._reveal(block)
                }
              : {})
          },
          describeCall(block.name, block.arguments, names)
        ),
        h('span', { class: 'aiide-Call-status', role: 'status' }, this._status(block, waiting))
      ),
      edited
        ? h(
            'div',
            { class: 'aiide-Call-edited', role: 'note' },
            'Edited by you before approving: this is what was done'
          )
        : null,
      waiting && block.approval?.outsideSandbox ? this._outsideWarning() : null,
      patch ? renderPatchDiff(patch, names) : this._argumentsView(block, names),
      waiting ? this._actions(block) : null,
      block.request ? this._request(block.request) : null,
      block.result && this._links
        ? citationList(block.result.citations, this._links.open, this._links.baseUrl, 'Found')
        : null,
      block.result ? this._result(block) : null,
      block.result?.error?.code === NOT_SANDBOXED ? this._switchOffer(block) : null
    );
    if (waiting && block.approval) {
      this._startTimer(block.approval.expiresAt);
      if (!this._revealed) {
        this._revealed = true; // once: the user may scroll away while deciding
        this._reveal(block);
      }
    }
  }

  dispose(): void {
    this._stopTimer();
    this._hidePreview();
    this._disposeFields();
  }

  /** The notebook a call is about. */
  private _path(block: CallBlock): string | null {
    const path = block.arguments?.path;
    return typeof path === 'string' && path
      ? path
      : block.request?.path ?? block.approval?.patch?.path ?? null;
  }

  /** Names cells by position and first line, as first seen (an applied edit moves them). */
  private _namer(block: CallBlock): CellNamer {
    const notebooks = this._handlers.notebooks;
    const path = this._path(block);
    if (!notebooks || !path) {
      return noNotebook;
    }
    return (cellId, source) => {
      let name = this._names.get(cellId);
      if (name === undefined) {
        const cell = notebooks.cells(path).find(c => c.id === cellId);
        if (!cell) {
          return noNotebook(cellId, source);
        }
        name = cellName(cell.position, cell.source);
        this._names.set(cellId, name);
      }
      return name;
    };
  }

  /** The cell to show: the one the call reads, runs or changes, or where it inserts. */
  private _target(block: CallBlock): string | null {
    const args = block.arguments ?? {};
    for (const key of ['cell_id', 'after_id']) {
      if (typeof args[key] === 'string' && args[key]) {
        return args[key] as string;
      }
    }
    const op = (block.request?.patch ?? block.approval?.patch)?.ops[0];
    if (op) {
      return op.op === 'insert' ? op.after_id : op.cell_id;
    }
    return block.request?.cellId ?? null;
  }

  private _reveal(block: CallBlock): void {
    const path = this._path(block);
    const applied = block.request?.state === 'applied' && block.request.held;
    const op = block.request?.patch?.ops[0];
    // Once inserted, the new cell is the one to show.
    const target = applied && op?.op === 'insert' ? op.cell.id : this._target(block);
    if (path && target) {
      this._handlers.notebooks?.reveal(path, target);
    }
  }

  private _state(block: CallBlock): string {
    const decision = block.approval?.resolution?.decision;
    if (decision === 'reject' || decision === 'expired') {
      return decision;
    }
    if (block.result) {
      return block.result.ok ? 'done' : 'failed';
    }
    return decision ?? (block.decision === 'deny' ? 'denied' : 'running');
  }

  private _status(block: CallBlock, waiting: boolean): string {
    const resolution = block.approval?.resolution;
    if (waiting) {
      return this._mode === 'sent' ? 'Sending your decision…' : 'Waiting for your approval';
    }
    if (resolution?.decision === 'reject') {
      // Decided on this card: the user's own decision, not "Rejected by root".
      const who = this._decidedHere ? 'You rejected this' : `Rejected${resolution.by ? ` by ${resolution.by}` : ''}`;
      return resolution.reason ? `${who}: ${resolution.reason}` : who;
    }
    if (resolution?.decision === 'expired') {
      return 'Expired without a decision';
    }
    if (block.result) {
      if (block.result.error?.code === 'conflict') {
        return block.request?.forced ? 'Applied anyway by you' : 'Not applied';
      }
      return block.result.ok ? 'Done' : `Failed (${block.result.error?.code ?? 'error'})`;
    }
    if (resolution) {
      const how = resolution.edited ? 'Approved with changes' : 'Approved';
      return resolution.by ? `${how} by ${resolution.by}` : how;
    }
    if (block.approval) {
      return 'Not decided (the run ended)';
    }
    if (block.request?.state === 'confirm') {
      return 'Waiting for you';
    }
    return block.decision === 'deny' ? 'Refused by policy' : 'Running…';
  }

  private _argumentsView(block: CallBlock, names: CellNamer): HTMLElement | null {
    if (!block.arguments || Object.keys(block.arguments).length === 0) {
      return null;
    }
    const code = this._code(block);
    if (code !== null) {
      return h(
        'div',
        { class: 'aiide-Call-code', role: 'group', 'aria-label': 'The code it will run' },
        h('pre', {}, code)
      );
    }
    if (block.name === 'run_cell' && typeof block.arguments.cell_id === 'string') {
      return h('div', { class: 'aiide-Call-note' }, `${names(block.arguments.cell_id)} is not open here`);
    }
    return h(
      'details',
      { class: 'aiide-Call-args' },
      h('summary', {}, 'Arguments'),
      h('pre', {}, JSON.stringify(block.arguments, null, 2))
    );
  }

  /** The code a call runs: its own, or its cell's in the open notebook. */
  private _code(block: CallBlock): string | null {
    const args = block.arguments ?? {};
    if (block.name === 'execute_code' && typeof args.code === 'string') {
      return args.code;
    }
    const path = this._path(block);
    if (block.name === 'run_cell' && typeof args.cell_id === 'string' && path) {
      const cell = this._handlers.notebooks?.cells(path).find(c => c.id === args.cell_id);
      if (cell) {
        this._ranCode ??= cell.source; // what it was asked to run, not what the cell became
        return this._ranCode;
      }
    }
    return this._ranCode;
  }

  private _actions(block: CallBlock): HTMLElement {
    const bar = h('div', { class: 'aiide-Call-actions' });
    const sent = this._mode === 'sent';
    if (this._mode === 'editing' && this._form) {
      const form = this._form;
      const path = this._path(block);
      const cells = path ? this._handlers.notebooks?.cells(path) ?? [] : [];
      const boxes = form.strings.map(([key, value], i) => {
        const set = (text: string): void => {
          form.strings[i] = [key, text];
        };
        const language = key === 'content' ? languageOf(path ?? '') : 'python';
        return h(
          'label',
          { class: 'aiide-Call-field', 'data-key': key },
          h('span', {}, key),
          CODE_ARGUMENTS.includes(key) ? this._codeField(value, set, language) : textField(value, set)
        );
      });
      const refs = form.cells.map(([key, value], i) =>
        h(
          'label',
          { class: 'aiide-Call-field', 'data-key': key },
          h('span', {}, key === 'after_id' ? 'where' : key),
          h(
            'select',
            {
              onchange: (e: Event) => {
                const chosen = (e.target as HTMLSelectElement).value;
                form.cells[i] = [key, chosen === '' ? null : chosen];
              }
            },
            h('option', { value: '', ...(value === null ? { selected: true } : {}) }, 'at the top'),
            cells.map(c =>
              h(
                'option',
                { value: c.id, ...(c.id === value ? { selected: true } : {}) },
                `after ${cellName(c.position, c.source)}`
              )
            ),
            value !== null && !cells.some(c => c.id === value)
              ? h('option', { value, selected: true }, `after ${noNotebook(value)}`)
              : null
          )
        )
      );
      const rest = form.rest
        ? h(
            'label',
            { class: 'aiide-Call-field' },
            h('span', {}, 'other arguments (JSON)'),
            h('textarea', {
              rows: 4,
              spellcheck: 'false',
              oninput: (e: Event) => {
                form.rest = (e.target as HTMLTextAreaElement).value;
              }
            }, form.rest)
          )
        : null;
      const error = h('div', { class: 'aiide-Call-error', role: 'alert' });
      fill(
        bar,
        h('div', { class: 'aiide-Call-form' }, boxes, refs, rest, error),
        button('Approve with changes', () => {
          const result = fromForm(form);
          if (!result.ok) {
            error.textContent = result.error;
            return;
          }
          const edited = isEdited(block.arguments ?? {}, form) ? result.arguments : null;
          this._decide(() => this._handlers.approve(block, edited));
        }, { kind: 'accept' }),
        button('Cancel', () => this._setMode('idle'))
      );
      return bar;
    }
    if (this._mode === 'rejecting') {
      const input = h('input', {
        type: 'text',
        class: 'aiide-Call-reason',
        placeholder: 'Why? (optional, the assistant is told)',
        'aria-label': 'Reason for rejecting',
        value: this._reason,
        oninput: (e: Event) => {
          this._reason = (e.target as HTMLInputElement).value;
        },
        onkeydown: (e: Event) => {
          if ((e as KeyboardEvent).key === 'Enter') {
            this._decide(() => this._handlers.reject(block, this._reason.trim()));
          }
        }
      });
      fill(
        bar,
        input,
        button('Reject', () => this._decide(() => this._handlers.reject(block, this._reason.trim())), {
          kind: 'reject'
        }),
        button('Cancel', () => this._setMode('idle'))
      );
      requestAnimationFrame(() => input.focus());
      return bar;
    }
    const approve = button('Approve', () => this._decide(() => this._handlers.approve(block, null)), {
      kind: 'accept',
      title: 'Let the assistant do this'
    });
    const edit = button('Edit', () => {
      this._form = toForm(block.arguments ?? {});
      this._setMode('editing');
    }, { title: 'Change the arguments, then approve' });
    const reject = button('Reject', () => this._setMode('rejecting'), {
      kind: 'reject',
      title: 'Refuse, optionally saying why'
    });
    for (const b of [approve, edit, reject]) {
      b.disabled = sent;
    }
    // An outside agent's call is approved as it was made, or rejected.
    const editable = block.approval?.editable !== false;
    fill(bar, approve, editable ? edit : null, reject, h('span', { class: 'aiide-Call-expiry' }));
    return bar;
  }

  private _request(request: INotebookRequest): HTMLElement {
    const line = h('div', { class: 'aiide-Call-request', 'data-state': request.state });
    const isPatch = request.kind === 'patch';
    const names = this._block ? this._namer(this._block) : noNotebook;
    const target = isPatch
      ? request.path
      : `${request.cellId ? names(request.cellId) : 'a cell'} of ${request.path}`;
    switch (request.state) {
      case 'confirm':
        fill(
          line,
          h('span', {}, isPatch ? `Apply this change to ${target}?` : `Run ${target}?`),
          button(isPatch ? 'Apply' : 'Run', () => this._handlers.confirm(request.requestId), {
            kind: 'accept'
          }),
          button(isPatch ? 'Reject' : 'Skip', () =>
            this._handlers.refuse(request.requestId, 'the user declined')
          , { kind: 'reject' })
        );
        break;
      case 'pending':
        fill(line, isPatch ? `Applying to ${target}…` : `Running ${target}…`);
        break;
      case 'applied': {
        if (request.reason === 'undone') {
          fill(line, h('span', {}, `Undone in ${target}`));
          break;
        }
        if (!request.held) {
          line.dataset.state = 'gone';
          fill(
            line,
            h('span', {}, `No longer in ${target}: undone or changed in the notebook`)
          );
          break;
        }
        const undo = button('Undo', () => this._handlers.undo(request.requestId), {
          title: request.undoable
            ? 'Take this change back (one step)'
            : 'Other changes came after it: use Edit › Undo in the notebook'
        });
        undo.disabled = !request.undoable;
        fill(
          line,
          h('span', {}, request.forced ? `Applied anyway to ${target}, by you` : `Applied to ${target}`),
          undo,
          request.reason ? h('span', { class: 'aiide-Call-note' }, request.reason) : null
        );
        break;
      }
      case 'ok':
        fill(line, `Ran ${target}`);
        break;
      case 'error':
        fill(line, `${target}: ${request.reason ?? 'the cell raised an error'}`);
        break;
      case 'conflict':
        fill(line, ...this._conflictLine(request));
        break;
      case 'rejected':
        fill(line, isPatch ? 'You rejected this change' : 'You did not run the cell');
        break;
      case 'past':
        fill(line, isPatch ? `Change sent to ${target}` : `Run requested for ${target}`);
        break;
    }
    return line;
  }

  /**
   * "Not applied: cell 3 (…) changed since the assistant read it", and when a changed cell
   * is the cause: its two versions side by side on demand, and "Apply anyway".
   */
  private _conflictLine(request: INotebookRequest): (HTMLElement | null)[] {
    const text = h('span', {}, `Not applied: ${request.reason ?? 'the notebook changed'}`);
    const conflict = request.conflict;
    if (!conflict) {
      return [text];
    }
    const show = button(
      this._theirsShown ? 'Hide the versions' : "Show the notebook's version",
      () => {
        this._theirsShown = !this._theirsShown;
        this._redraw();
      },
      { title: 'What the notebook has now, beside what the assistant wanted to write' }
    );
    show.setAttribute('aria-expanded', String(this._theirsShown));
    const anyway = this._handlers.applyAnyway
      ? button('Apply anyway', () => this._handlers.applyAnyway!(request.requestId), {
          kind: 'accept',
          title: "Write the assistant's change over the notebook's (one undo takes it back)"
        })
      : null;
    const versions = this._theirsShown
      ? h(
          'div',
          { class: 'aiide-Call-versions' },
          h('div', { class: 'aiide-Call-versionLabel' }, 'The notebook has now:'),
          h('pre', { class: 'aiide-Call-theirs' }, conflict.theirs || '(empty)'),
          h(
            'div',
            { class: 'aiide-Call-versionLabel' },
            conflict.ours === null ? 'The assistant wanted to delete it.' : 'The assistant wanted:'
          ),
          conflict.ours === null ? null : h('pre', { class: 'aiide-Call-ours' }, conflict.ours)
        )
      : null;
    return [text, show, anyway, versions];
  }

  private _outsideWarning(): HTMLElement {
    return h(
      'div',
      { class: 'aiide-Call-warning', role: 'note' },
      "Runs outside the sandbox: this notebook's kernel is not sandboxed, so the code " +
        "runs as the server's user, with its files and network. Your administrator allows " +
        'this; approve only code you would run yourself.'
    );
  }

  /** The one-click way out of `kernel_not_sandboxed`. */
  private _switchOffer(block: CallBlock): HTMLElement {
    const path = typeof block.arguments?.path === 'string' ? block.arguments.path : null;
    const line = h('div', { class: 'aiide-Call-switch', 'data-state': this._switch.state });
    if (this._switch.state === 'done') {
      fill(line, 'Switched to Python 3 (sandboxed). Ask again: the assistant can run code now.');
      return line;
    }
    const go = button(
      'Switch this notebook to the sandboxed kernel',
      () => {
        this._switch = { state: 'switching', error: '' };
        this._redraw();
        this._handlers.switchToSandbox(path).then(
          () => {
            this._switch = { state: 'done', error: '' };
            this._redraw();
          },
          (error: unknown) => {
            const message = error instanceof Error ? error.message : String(error);
            this._switch = { state: 'failed', error: message };
            this._redraw();
          }
        );
      },
      { kind: 'accept', title: 'Restart this notebook on Python 3 (sandboxed)' }
    );
    go.disabled = this._switch.state === 'switching';
    fill(
      line,
      h('span', {}, "The assistant runs code only in the sandboxed kernel."),
      go,
      this._switch.state === 'failed'
        ? h('span', { class: 'aiide-Call-note', role: 'alert' }, `Could not switch: ${this._switch.error}`)
        : null
    );
    return line;
  }

  private _hidePreview(): void {
    this._preview?.();
    this._preview = null;
  }

  private _redraw(): void {
    if (this._block) {
      this.update(this._block, false);
    }
  }

  private _result(block: CallBlock): HTMLElement | null {
    const result = block.result!;
    if (!result.ok && result.error?.code === 'conflict' && block.request?.state !== 'past') {
      return null; // the request line says it already, in the user's words (once, not twice)
    }
    // A rejected call did not fail: it was not run, as the user asked (no red "Error").
    const rejected = block.approval?.resolution?.decision === 'reject';
    const summary = result.ok
      ? 'Result'
      : rejected
        ? 'Not run'
        : `Error: ${firstLine(result.error?.message ?? result.error?.code ?? 'failed')}`;
    return h(
      'details',
      { class: 'aiide-Call-result', 'data-ok': rejected ? 'not-run' : String(result.ok) },
      h('summary', {}, summary),
      h('pre', {}, result.content)
    );
  }

  /** JupyterLab's code editor when the page has one, else a text box. */
  private _codeField(text: string, onChange: (text: string) => void, language: string): HTMLElement {
    const factory = this._handlers.notebooks?.codeField;
    if (!factory) {
      return textField(text, onChange, true);
    }
    const field = factory(text, onChange, language);
    this._fields.push(field);
    return field.node;
  }

  private _disposeFields(): void {
    for (const field of this._fields.splice(0)) {
      field.dispose();
    }
  }

  private _decide(send: () => boolean): void {
    this._mode = 'sent';
    this._decidedHere = true;
    if (!send()) {
      this._mode = 'idle';
    }
    if (this._block) {
      this.update(this._block, true);
    }
  }

  private _setMode(mode: Mode): void {
    this._mode = mode;
    if (this._block) {
      this.update(this._block, true);
    }
  }

  private _startTimer(expiresAt: number): void {
    const tick = (): void => {
      const label = this.node.querySelector('.aiide-Call-expiry');
      if (label) {
        label.textContent = countdown(expiresAt);
      }
    };
    tick();
    if (this._timer === null) {
      this._timer = window.setInterval(tick, 1000);
    }
  }

  private _stopTimer(): void {
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
  }

  private readonly _handlers: ICallHandlers;
  private readonly _links: ICitationLinks | null;
  private _block: CallBlock | null = null;
  private _mode: Mode = 'idle';
  /** A decision was sent from this card (the resolution that comes back is the user's). */
  private _decidedHere = false;
  private _form: IArgumentForm | null = null;
  private _fields: ICodeField[] = [];
  private readonly _names = new Map<string, string>();
  private _revealed = false;
  private _theirsShown = false;
  /** Takes away the diff shown in the notebook while the card waits. */
  private _preview: (() => void) | null = null;
  private _ranCode: string | null = null;
  private _reason = '';
  private _timer: number | null = null;
  private _switch: { state: 'offered' | 'switching' | 'done' | 'failed'; error: string } = {
    state: 'offered',
    error: ''
  };
}
