/**
 * Draws a `Transcript`: one view per block, redrawn only when its block changes, kept
 * scrolled to the end while the user is there. Below the last block: "Thinking…" while
 * the assistant works with nothing to show, else the last turn's actions (edit the
 * question, Regenerate / Retry).
 */
import type { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Widget } from '@lumino/widgets';

import { explainCode } from '../api/failure';
import { citationLink, type ICitationLinks } from '../knowledge/citations';
import { button, fill, h } from '../ui/dom';
import { CallCard, type ICallHandlers } from './callCard';
import type { ICodeActions } from './codeActions';
import { AnswerView } from './markdown';
import { renderFixEnd, renderFixStep } from './fixView';
import type { ICellView } from '../notebook/bridge';
import { questionNode } from './questionText';
import type { Block, ITranscriptChange, Transcript } from './transcript';
import { SLASH_COMMANDS } from './slash';
import { failedTurn, isThinking, lastTurn, type ILastTurn } from './turns';

/** How long the card that waits for the user is highlighted when pointed at, in ms. */
const FLASH_MS = 1600;

export interface ITranscriptViewOptions {
  rendermime: IRenderMimeRegistry;
  codeActions: ICodeActions;
  calls: ICallHandlers;
  /** Citation links (knowledge passages); null: citations shown as plain text. */
  citations: ICitationLinks | null;
  /** Puts a question back into the chat box (not sent, or to change and send again). */
  editQuestion(text: string): void;
  /** Sends the last question again (Regenerate, Retry). */
  resend(turn: ILastTurn): void;
  /** A fix's steps name cells as the open notebook numbers them; its Undo takes it back. */
  fix?: {
    cells(path: string): ICellView[];
    undo(end: Extract<Block, { kind: 'fixEnd' }>): void;
  };
}

interface IBlockView {
  node: HTMLElement;
  update(block: Block): void;
  dispose(): void;
}

const STATUS_TEXT: Record<string, string> = {
  completed: 'Done',
  failed: 'Failed',
  cancelled: 'Stopped',
  expired: 'Expired'
};

function number(n: number): string {
  return n.toLocaleString();
}

export class TranscriptView extends Widget {
  constructor(options: ITranscriptViewOptions) {
    super();
    this._options = options;
    this.addClass('aiide-Transcript');
    this.node.setAttribute('role', 'log');
    this.node.setAttribute('aria-label', 'Conversation');
    this.node.tabIndex = 0;
    this.node.addEventListener('scroll', () => {
      const n = this.node;
      this._pinned = n.scrollHeight - n.scrollTop - n.clientHeight < 40;
    });
  }

  setTranscript(transcript: Transcript): void {
    this._transcript?.changed.disconnect(this._onChange, this);
    this._clear();
    this._transcript = transcript;
    transcript.changed.connect(this._onChange, this);
    transcript.blocks.forEach((block, i) => this._add(block, i));
    this.node.append(this._footer);
    this._drawFooter();
    this._empty();
    this._pinned = true;
    this._scroll();
  }

  override dispose(): void {
    this._transcript?.changed.disconnect(this._onChange, this);
    this._clear();
    super.dispose();
  }

  /** Scrolls the card that waits for the user's decision into view and flashes it. */
  revealPending(): void {
    const card = this.node.querySelector<HTMLElement>('.aiide-Call[data-state="awaiting"]');
    if (!card) {
      return;
    }
    card.scrollIntoView({ block: 'nearest' });
    card.classList.remove('aiide-mod-flash');
    void card.offsetWidth; // restarts the animation when pointed at twice in a row
    card.classList.add('aiide-mod-flash');
    window.setTimeout(() => card.classList.remove('aiide-mod-flash'), FLASH_MS);
  }

  private _onChange(transcript: Transcript, change: ITranscriptChange): void {
    this._drawFooter();
    if (change.index < 0) {
      transcript.blocks.forEach((block, i) => {
        if (block.kind === 'call') {
          this._views[i]?.update(block);
        }
      });
      return;
    }
    const block = transcript.blocks[change.index];
    if (change.added) {
      this._add(block, change.index);
      this._empty();
    } else {
      this._views[change.index]?.update(block);
    }
    this._scroll();
  }

  private _add(block: Block, index: number): void {
    const view = this._create(block);
    view.update(block);
    this._views[index] = view;
    this.node.append(view.node);
    this.node.append(this._footer); // stays last
  }

  private _drawFooter(): void {
    const transcript = this._transcript;
    if (!transcript) {
      fill(this._footer);
      return;
    }
    if (isThinking(transcript)) {
      if (!this._footer.querySelector('.aiide-Thinking')) {
        fill(
          this._footer,
          h(
            'div',
            { class: 'aiide-Thinking', role: 'status', 'aria-label': 'The assistant is thinking' },
            'Thinking'
          )
        );
      }
      return;
    }
    const turn = lastTurn(transcript);
    if (!turn) {
      fill(this._footer);
      return;
    }
    const retry = failedTurn(turn);
    fill(
      this._footer,
      h(
        'div',
        { class: 'aiide-TurnActions' },
        button('Edit question', () => this._options.editQuestion(turn.question), {
          title: 'Put the last question back in the chat box, to change it and send it again'
        }),
        button(retry ? 'Retry' : 'Regenerate', () => this._options.resend(turn), {
          title: retry ? 'Send the last question again' : 'Ask the last question again for another answer'
        })
      )
    );
  }

  private _create(block: Block): IBlockView {
    switch (block.kind) {
      case 'answer': {
        const answer = new AnswerView(
          this._options.rendermime,
          this._options.codeActions,
          this._options.citations
        );
        return {
          node: answer.node,
          update: b => b.kind === 'answer' && answer.update(b.text, b.streaming, b.citations),
          dispose: () => answer.dispose()
        };
      }
      case 'call': {
        const card = new CallCard(this._options.calls, this._options.citations);
        return {
          node: card.node,
          update: b => {
            if (b.kind === 'call') {
              const run = this._transcript?.run(b.runId);
              card.update(b, run?.state === 'awaiting_approval');
            }
          },
          dispose: () => card.dispose()
        };
      }
      default: {
        const node = h('div');
        return { node, update: b => this._simple(node, b), dispose: () => undefined };
      }
    }
  }

  /** Blocks without state of their own: drawn from scratch on each change. */
  private _simple(node: HTMLElement, block: Block): void {
    switch (block.kind) {
      case 'question':
        node.className = 'aiide-Question';
        fill(
          node,
          questionNode(block.text || '(question)'),
          block.failed
            ? h(
                'div',
                { class: 'aiide-Question-failed', role: 'alert' },
                h('span', {}, `Not sent: ${block.failed}`),
                button('Edit and resend', () => this._options.editQuestion(block.text))
              )
            : null
        );
        break;
      case 'context':
        node.className = 'aiide-Context';
        fill(
          node,
          h(
            'details',
            {},
            h(
              'summary',
              { title: 'What the assistant was shown to answer this' },
              `Context sent: ${number(block.tokens)} of ${number(block.budget)} tokens`
            ),
            h(
              'ul',
              {},
              block.items.map(item =>
                h(
                  'li',
                  {},
                  h('span', { class: 'aiide-Context-kind' }, item.kind),
                  ' ',
                  item.citation && this._options.citations
                    ? citationLink(
                        item.citation,
                        this._options.citations.open,
                        this._options.citations.baseUrl,
                        item.citation.label
                      )
                    : item.ref || '—',
                  ' ',
                  h('span', { class: 'aiide-Context-tokens' }, `${number(item.tokens)} tokens`),
                  item.note
                    ? h('span', { class: 'aiide-Context-note' }, ` (not sent: ${item.note})`)
                    : null
                )
              )
            )
          )
        );
        break;
      case 'notice':
        node.className = 'aiide-Notice';
        node.setAttribute('role', 'status');
        fill(node, block.message);
        break;
      case 'error':
        node.className = 'aiide-Error';
        node.setAttribute('role', 'alert');
        node.dataset.code = block.code;
        fill(node, explainCode(block.code, block.message).message);
        break;
      case 'report':
        node.className = block.tone === 'error' ? 'aiide-Report aiide-mod-failed' : 'aiide-Report';
        node.setAttribute('role', block.tone === 'error' ? 'alert' : 'status');
        fill(
          node,
          h('div', { class: 'aiide-Report-text' }, block.text),
          block.items.length
            ? h(
                'ul',
                { class: 'aiide-Report-items' },
                block.items.map(item =>
                  h(
                    'li',
                    {},
                    h('code', { class: 'aiide-Report-path' }, item.path),
                    ` ${item.reason}`
                  )
                )
              )
            : null
        );
        break;
      case 'fixStep':
        node.className = 'aiide-Fix';
        fill(node, renderFixStep(block, this._options.fix?.cells(block.path) ?? []));
        break;
      case 'fixEnd':
        node.className = 'aiide-Fix';
        fill(
          node,
          renderFixEnd(
            block,
            this._options.fix?.cells(block.path) ?? [],
            this._options.fix ? end => this._options.fix?.undo(end) : null
          )
        );
        break;
      case 'finished':
        node.className = 'aiide-Finished';
        node.dataset.status = block.status;
        fill(
          node,
          `${STATUS_TEXT[block.status] ?? block.status} · ${number(block.usage.input_tokens)} in / ` +
            `${number(block.usage.output_tokens)} out tokens · ${block.usage.model_calls} model ` +
            `call${block.usage.model_calls === 1 ? '' : 's'}`
        );
        break;
      default:
        break;
    }
  }

  /** The welcome text of an empty conversation. */
  private _empty(): void {
    const empty = (this._transcript?.blocks.length ?? 0) === 0;
    if (empty && !this._welcome) {
      this._welcome = h(
        'div',
        { class: 'aiide-Welcome' },
        h('p', {}, 'Ask about your notebook, or have the assistant edit and run it: every change waits for your approval.'),
        h(
          'ul',
          {},
          SLASH_COMMANDS.map(c => h('li', {}, h('code', {}, `/${c.name}`), ` ${c.description}`)),
          h('li', {}, h('code', {}, '@'), ' mention a file or a cell')
        )
      );
      this.node.append(this._welcome);
    } else if (!empty && this._welcome) {
      this._welcome.remove();
      this._welcome = null;
    }
  }

  private _scroll(): void {
    if (this._pinned) {
      requestAnimationFrame(() => {
        this.node.scrollTop = this.node.scrollHeight;
      });
    }
  }

  private _clear(): void {
    for (const view of this._views) {
      view?.dispose();
    }
    this._views = [];
    this._welcome = null;
    this.node.replaceChildren();
  }

  private readonly _options: ITranscriptViewOptions;
  private _transcript: Transcript | null = null;
  private _views: (IBlockView | undefined)[] = [];
  private _welcome: HTMLElement | null = null;
  private readonly _footer = h('div', { class: 'aiide-Transcript-footer' });
  private _pinned = true;
}
