/**
 * The chat box: a text area with `/` command and `@` mention completion (keyboard:
 * arrows, Enter/Tab to pick, Escape to close), the history of sent messages (↑/↓ as in
 * a shell), the mode (Agent / Ask), the context line, a line of status and notes, and
 * Send — or Stop while an answer is coming.
 */
import { Widget } from '@lumino/widgets';

import type { ConnectionState } from '../api/chatSocket';
import type { Mention, Task } from '../api/protocol';
import { button, fill, h } from '../ui/dom';
import { collectMentions, mentionQuery, type IMentionCandidate } from './mentions';
import { completeCommand, completeSlash } from './slash';

/** Sent messages kept for ↑ (the oldest go first). */
const HISTORY_SIZE = 100;

export interface IComposerOptions {
  enterToSend(): boolean;
  /** Mention candidates for what follows `@`. */
  candidates(query: string): Promise<IMentionCandidate[]>;
  send(text: string, task: Task, mentions: Mention[]): void;
  stop(): void;
  /** Enter while an answer is still coming: the panel says why nothing was sent. */
  blocked(): void;
}

interface IOption {
  label: string;
  detail: string;
  apply(): void;
  /** Enter sends the text as it is instead of applying (a fully typed `/learn`). */
  sends?: boolean;
}

let popupCounter = 0;

export class Composer extends Widget {
  constructor(options: IComposerOptions) {
    super();
    this._options = options;
    this.addClass('aiide-Composer');
    const popupId = `aiide-composer-popup-${++popupCounter}`;
    this._popup = h('ul', { class: 'aiide-Popup', id: popupId, role: 'listbox', hidden: true });
    this._input = h('textarea', {
      class: 'aiide-Composer-input',
      rows: 3,
      placeholder: 'Ask about your notebook…  (/ for commands, @ to mention)',
      'aria-label': 'Message to the assistant',
      'aria-autocomplete': 'list',
      'aria-controls': popupId,
      'aria-expanded': 'false',
      role: 'combobox'
    });
    this._input.addEventListener('keydown', this._onKey);
    this._input.addEventListener('input', () => void this._suggest());
    this._input.addEventListener('blur', () => window.setTimeout(() => this._close(), 150));
    this._task = h(
      'select',
      { class: 'aiide-Composer-task', 'aria-label': 'Mode', title: 'Agent: may edit and run (with your approval). Ask: answers only.' },
      h('option', { value: 'agent' }, 'Agent'),
      h('option', { value: 'chat' }, 'Ask')
    );
    this._send = button('Send', () => this._submit(), { kind: 'accept', title: 'Send (Enter)' });
    this._stop = button('Stop', () => this._options.stop(), {
      kind: 'reject',
      title: 'Stop the answer'
    });
    this._stop.hidden = true;
    this._context = h('div', { class: 'aiide-Composer-context', 'aria-live': 'polite' });
    // Status and notes get a line of their own, where they wrap: in the bar a long one
    // pushed Send out of a narrow sidebar.
    this._status = h('span', { class: 'aiide-Composer-status' });
    this._note = h('span', { class: 'aiide-Composer-note' });
    this._hint = h('div', { class: 'aiide-Composer-hint', role: 'status' }, this._status, this._note);
    this._hint.hidden = true;
    this.node.append(
      this._context,
      this._popup,
      this._hint,
      this._input,
      h('div', { class: 'aiide-Composer-bar' }, this._task, this._send, this._stop)
    );
  }

  get task(): Task {
    return this._task.value === 'chat' ? 'chat' : 'agent';
  }

  set task(task: Task) {
    this._task.value = task;
  }

  setContext(label: string): void {
    this._context.textContent = label;
  }

  /** While a run is active: Stop instead of Send. */
  setBusy(busy: boolean): void {
    this._send.hidden = busy;
    this._stop.hidden = !busy;
  }

  /** Sending needs a connection; typing never waits for one. */
  setConnection(state: ConnectionState): void {
    this._send.disabled = state !== 'open';
    this._status.textContent =
      state === 'open'
        ? ''
        : state === 'connecting' || state === 'reconnecting'
          ? 'Not connected: Send comes back with the connection.'
          : 'The assistant is not available here (see above).';
    this._drawHint();
  }

  /** A note about what was just typed or sent; it goes when the text is changed or sent. */
  setNote(text: string): void {
    this._note.textContent = text;
    this._drawHint();
  }

  /** Puts `text` in the box to be changed and sent, caret at its end. */
  setText(text: string): void {
    this._input.value = text;
    this._input.focus();
    this._input.setSelectionRange(text.length, text.length);
    this.setNote('');
  }

  focusInput(): void {
    this._input.focus();
  }

  private _submit(): void {
    const text = this._input.value.trim();
    if (!text || this._send.disabled) {
      return;
    }
    if (this._send.hidden) {
      this._options.blocked(); // the text stays in the box
      return;
    }
    const mentions = collectMentions(text, this._picked);
    this._remember(text);
    this.setNote('');
    this._options.send(text, this.task, mentions);
    this._input.value = '';
    this._picked = [];
    this._close();
  }

  private _drawHint(): void {
    this._hint.hidden = !this._status.textContent && !this._note.textContent;
  }

  /**
   * One history for all conversations, like a shell's: the same question ("explain
   * this cell") is asked again in the next conversation more often than in this one.
   */
  private _remember(text: string): void {
    if (this._history[this._history.length - 1] !== text) {
      this._history.push(text);
      this._history.splice(0, this._history.length - HISTORY_SIZE);
    }
    this._browsing = -1;
    this._draft = '';
  }

  /**
   * ↑/↓ walk the history when the caret is on the first / last line (elsewhere they
   * move the caret, as in any text box), or when the box still shows an entry as it
   * was recalled; ↓ past the newest entry brings back what was being typed.
   */
  private _walkHistory(event: KeyboardEvent): boolean {
    const box = this._input;
    const value = box.value;
    const start = box.selectionStart ?? value.length;
    const end = box.selectionEnd ?? value.length;
    const recalled = this._browsing >= 0 && value === this._history[this._browsing];
    const up = event.key === 'ArrowUp';
    const atEdge =
      start === end && (up ? !value.slice(0, start).includes('\n') : !value.slice(end).includes('\n'));
    if (!this._history.length || !(recalled || atEdge)) {
      return false;
    }
    let next: number;
    if (up) {
      next = this._browsing < 0 ? this._history.length - 1 : this._browsing - 1;
      if (next < 0) {
        return true; // at the oldest entry: stay there
      }
      if (this._browsing < 0) {
        this._draft = value;
      }
    } else {
      if (this._browsing < 0) {
        return false;
      }
      next = this._browsing + 1;
    }
    this._browsing = next < this._history.length ? next : -1;
    const text = this._browsing < 0 ? this._draft : this._history[this._browsing];
    box.value = text;
    box.setSelectionRange(text.length, text.length);
    this._picked = [];
    return true;
  }

  private readonly _onKey = (event: KeyboardEvent): void => {
    if (!this._popup.hidden && this._choices.length) {
      if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
        event.preventDefault();
        const n = this._choices.length;
        this._active = (this._active + (event.key === 'ArrowDown' ? 1 : n - 1)) % n;
        this._drawPopup();
        return;
      }
      if (event.key === 'Enter' || event.key === 'Tab') {
        event.preventDefault();
        const choice = this._choices[this._active];
        if (event.key === 'Enter' && choice.sends) {
          this._close();
          this._submit();
        } else {
          choice.apply();
        }
        return;
      }
      if (event.key === 'Escape') {
        event.preventDefault();
        event.stopPropagation();
        this._close();
        return;
      }
    }
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && this._options.enterToSend()) {
      event.preventDefault();
      this._submit();
      return;
    }
    const plain = !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey;
    if ((event.key === 'ArrowUp' || event.key === 'ArrowDown') && plain && !event.isComposing) {
      if (this._walkHistory(event)) {
        event.preventDefault();
      }
    }
  };

  private async _suggest(): Promise<void> {
    this.setNote(''); // it was about the text before this change
    const text = this._input.value;
    const caret = this._input.selectionStart ?? text.length;
    const slash = completeSlash(text);
    if (slash.length && caret === text.length) {
      const typed = completeCommand(text);
      this._show(
        slash.map(c => ({
          label: `/${c.name}`,
          detail: c.description,
          sends: typed === c,
          apply: () => {
            this._input.value = `/${c.name} `;
            this._close();
          }
        }))
      );
      return;
    }
    const query = mentionQuery(text, caret);
    if (!query) {
      this._close();
      return;
    }
    const generation = ++this._generation;
    let found: IMentionCandidate[] = [];
    try {
      found = await this._options.candidates(query.query);
    } catch {
      found = [];
    }
    if (generation !== this._generation || !this._asksFor(query)) {
      // The user typed on, moved the caret or left the box while the search ran: these
      // results answer a question nobody is asking any more, and must not reopen the popup.
      return;
    }
    this._show(
      found.map(c => ({
        label: c.label,
        detail: c.detail,
        apply: () => {
          // The @word as it is now: keys typed since these results came (Enter on "@pri"
          // while the list for "@pr" still shows) are replaced too, not left after it.
          const value = this._input.value;
          const caretNow = this._input.selectionStart ?? value.length;
          const typed = mentionQuery(value, caretNow);
          const same = typed !== null && typed.start === query.start;
          const before = value.slice(0, query.start);
          const after = value.slice(same ? caretNow : caret);
          this._input.value = `${before}${c.token} ${after}`;
          const at = before.length + c.token.length + 1;
          this._input.setSelectionRange(at, at);
          this._picked.push(c);
          this._close();
        }
      }))
    );
  }

  /** Whether the box has focus and the `@word` at its caret is still `query`. */
  private _asksFor(query: { start: number; query: string }): boolean {
    if (this._input.ownerDocument.activeElement !== this._input) {
      return false;
    }
    const now = mentionQuery(this._input.value, this._input.selectionStart ?? this._input.value.length);
    return now !== null && now.start === query.start && now.query === query.query;
  }

  private _show(options: IOption[]): void {
    this._choices = options;
    this._active = 0;
    if (!options.length) {
      this._close();
      return;
    }
    this._drawPopup();
  }

  private _drawPopup(): void {
    const id = this._popup.id;
    fill(
      this._popup,
      this._choices.map((o, i) =>
        h(
          'li',
          {
            id: `${id}-${i}`,
            role: 'option',
            class: i === this._active ? 'aiide-Popup-item aiide-mod-active' : 'aiide-Popup-item',
            'aria-selected': i === this._active ? 'true' : 'false',
            onmousedown: (e: Event) => {
              e.preventDefault();
              o.apply();
            }
          },
          h('span', { class: 'aiide-Popup-label' }, o.label),
          h('span', { class: 'aiide-Popup-detail' }, o.detail)
        )
      )
    );
    this._popup.hidden = false;
    this._input.setAttribute('aria-expanded', 'true');
    this._input.setAttribute('aria-activedescendant', `${id}-${this._active}`);
  }

  private _close(): void {
    this._popup.hidden = true;
    this._choices = [];
    this._input.setAttribute('aria-expanded', 'false');
    this._input.removeAttribute('aria-activedescendant');
  }

  private readonly _options: IComposerOptions;
  private readonly _input: HTMLTextAreaElement;
  private readonly _popup: HTMLUListElement;
  private readonly _task: HTMLSelectElement;
  private readonly _send: HTMLButtonElement;
  private readonly _stop: HTMLButtonElement;
  private readonly _context: HTMLElement;
  private readonly _hint: HTMLElement;
  private readonly _status: HTMLElement;
  private readonly _note: HTMLElement;
  private readonly _history: string[] = [];
  /** The history entry shown (-1: none, the box holds the user's own text). */
  private _browsing = -1;
  /** What was being typed when ↑ first recalled an entry. */
  private _draft = '';
  private _picked: IMentionCandidate[] = [];
  private _choices: IOption[] = [];
  private _active = 0;
  private _generation = 0;
}
