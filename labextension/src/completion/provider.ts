/**
 * Inline completion (ghost text) from `POST /aiide/api/complete`, as a provider for
 * JupyterLab's inline completer.
 *
 * It never gets in the way of typing: JupyterLab debounces automatic requests
 * (`debouncerDelay`, defaulted here); the ghost text appears with the model's first words
 * and grows as it writes (JupyterLab's `stream()` of an incomplete item); each new request
 * aborts the one before it (the server then cancels that model call), and text that
 * arrives after a newer request started is dropped. Failures never throw into the editor:
 * they are reported once, and after a refusal that will not go away by itself (signed
 * out, no quota, no model) the provider pauses for a while.
 */
import type {
  CompletionHandler,
  IInlineCompletionContext,
  IInlineCompletionItem,
  IInlineCompletionList,
  IInlineCompletionProvider
} from '@jupyterlab/completer';
import type { ISettingRegistry } from '@jupyterlab/settingregistry';
import type { LabIcon } from '@jupyterlab/ui-components';
import type { JSONValue } from '@lumino/coreutils';

import { describeFailure, type IFailure } from '../api/failure';
import type { ICompleteRequest, ICompleteResponse } from '../api/protocol';
import { GhostText } from './ghostText';

export const PROVIDER_ID = 'aiide';

/** Characters of code sent around the cursor. */
export const MAX_PREFIX = 6000;
export const MAX_SUFFIX = 2000;

export interface IInlineProviderOptions {
  /** Asks the server; `onText` gets each longer view of the text while it is written. */
  complete(
    body: ICompleteRequest,
    signal: AbortSignal,
    onText: (text: string) => void
  ): Promise<ICompleteResponse>;
  /** Text of the cells above the active one, for notebooks ("" elsewhere). */
  textBefore(widget: IInlineCompletionContext['widget']): string;
  /** The document's server path, when it has one. */
  path(widget: IInlineCompletionContext['widget']): string | null;
  /** The id of the notebook cell being completed, when in a notebook. */
  cellId?(widget: IInlineCompletionContext['widget']): string | null;
  /**
   * The text of the editor being completed now (the active cell in a notebook), or
   * `null` when unknown. JupyterLab builds a request at the keystroke and fetches after
   * the debounce: by then the user may have left the cell (Shift+Enter) or changed it.
   */
  editorText?(widget: IInlineCompletionContext['widget']): string | null;
  onFailure(failure: IFailure): void;
  now?(): number;
  icon?: LabIcon;
}

/** How long to stay quiet after a refusal of each kind. */
const PAUSE_MS: Partial<Record<IFailure['kind'], number>> = {
  signed_out: 300_000,
  forbidden: 300_000,
  not_installed: 300_000,
  no_model: 120_000,
  quota: 300_000,
  rate_limited: 30_000
};

const EMPTY: IInlineCompletionList = { items: [] };

/** An answer `fetch` returned incomplete, waiting for JupyterLab's `stream()`. */
interface IStreaming {
  ghost: GhostText;
  controller: AbortController;
  /** When it was asked (a refusal's pause counts from then). */
  now: number;
}

export function languageOf(mimeType: string | undefined): string {
  if (!mimeType) {
    return 'python';
  }
  if (/python/.test(mimeType)) {
    return 'python';
  }
  const match = /^text\/(?:x-)?([\w+#-]+)$/.exec(mimeType);
  return match ? match[1] : mimeType;
}

export class AiideInlineProvider implements IInlineCompletionProvider {
  constructor(options: IInlineProviderOptions) {
    this._options = options;
    this.icon = options.icon;
  }

  readonly name = 'aiide';
  readonly identifier = PROVIDER_ID;
  readonly icon?: LabIcon;

  readonly schema: ISettingRegistry.IProperty = {
    default: { debouncerDelay: 250, timeout: 15000, maxTokens: 96 },
    properties: {
      maxTokens: {
        title: 'Longest suggestion (tokens)',
        description: 'Upper bound of the length of one suggestion.',
        type: 'number',
        minimum: 1,
        maximum: 1024
      }
    }
  };

  configure(settings: { [property: string]: JSONValue }): void {
    const max = settings.maxTokens;
    if (typeof max === 'number' && max >= 1 && max <= 1024) {
      this._maxTokens = Math.round(max);
    }
  }

  async fetch(
    request: CompletionHandler.IRequest,
    context: IInlineCompletionContext
  ): Promise<IInlineCompletionList> {
    this._current?.abort();
    this._streams.clear(); // only the newest request's text may still be shown
    const now = (this._options.now ?? Date.now)();
    if (now < this._pausedUntil) {
      return EMPTY;
    }
    const current = this._options.editorText?.(context.widget) ?? null;
    if (current !== null && current !== request.text) {
      return EMPTY; // made for text the user has left: no model call (nor stale cells above)
    }
    const body = this._body(request, context);
    if (!body.prefix.trim()) {
      return EMPTY; // an empty cell: nothing to go on
    }
    const controller = new AbortController();
    this._current = controller;
    const ghost = new GhostText();
    this._options.complete(body, controller.signal, text => ghost.push(text)).then(
      answer => ghost.end(answer.completion),
      error => ghost.fail(error)
    );
    void ghost.settled.then(() => {
      if (this._current === controller) {
        this._current = null;
      }
    });
    await ghost.next();
    if (controller.signal.aborted) {
      return EMPTY; // a newer request is under way
    }
    const first = ghost.take();
    if (first === null) {
      // The whole answer came at once (or nothing did).
      const end = ghost.outcome;
      if (end?.error !== undefined) {
        this._failed(end.error, controller, now);
        return EMPTY;
      }
      return end?.completion ? { items: [{ insertText: end.completion }] } : EMPTY;
    }
    const token = String(++this._streamCount);
    this._streams.set(token, { ghost, controller, now });
    return { items: [{ insertText: first, isIncomplete: true, token }] };
  }

  /** The rest of an answer `fetch` returned incomplete: each longer text, then the end. */
  stream(token: string): AsyncGenerator<{ response: IInlineCompletionItem }> {
    // Claimed now, not at the generator's first step: a newer request clears the rest.
    const streaming = this._streams.get(token);
    this._streams.delete(token);
    return this._updates(streaming);
  }

  private async *_updates(
    streaming: IStreaming | undefined
  ): AsyncGenerator<{ response: IInlineCompletionItem }> {
    if (!streaming) {
      return;
    }
    const { ghost, controller, now } = streaming;
    for (;;) {
      await ghost.next();
      const text = ghost.take();
      if (text !== null) {
        yield { response: { insertText: text, isIncomplete: true } };
        continue;
      }
      const end = ghost.outcome;
      if (end?.error === undefined) {
        yield { response: { insertText: end?.completion ?? ghost.shown } };
        return;
      }
      const failure = this._failed(end.error, controller, now);
      yield {
        response: {
          insertText: ghost.shown,
          ...(failure ? { error: { message: failure.message } } : {})
        }
      };
      return;
    }
  }

  /** Reports a failure and pauses after lasting refusals; `null` for an abort of ours. */
  private _failed(error: unknown, controller: AbortController, now: number): IFailure | null {
    if (controller.signal.aborted) {
      return null;
    }
    const failure = describeFailure(error);
    const pause = PAUSE_MS[failure.kind];
    if (pause) {
      this._pausedUntil = now + pause;
    }
    this._options.onFailure(failure);
    return failure;
  }

  private _body(
    request: CompletionHandler.IRequest,
    context: IInlineCompletionContext
  ): ICompleteRequest {
    const before = this._options.textBefore(context.widget);
    const prefix = (before ? `${before}\n\n` : '') + request.text.slice(0, request.offset);
    const path = this._options.path(context.widget);
    const cellId = this._options.cellId?.(context.widget) ?? null;
    return {
      prefix: prefix.slice(-MAX_PREFIX),
      suffix: request.text.slice(request.offset, request.offset + MAX_SUFFIX),
      language: languageOf(request.mimeType).slice(0, 64),
      ...(path ? { path } : {}),
      ...(cellId ? { cell_id: cellId } : {}),
      max_tokens: this._maxTokens
    };
  }

  private readonly _options: IInlineProviderOptions;
  private _current: AbortController | null = null;
  private readonly _streams = new Map<string, IStreaming>();
  private _streamCount = 0;
  private _pausedUntil = 0;
  private _maxTokens = 96;
}
