/**
 * Inline completion (ghost text) from `POST /aiide/api/complete`, as a provider for
 * JupyterLab's inline completer.
 *
 * It never gets in the way of typing: JupyterLab debounces automatic requests
 * (`debouncerDelay`, defaulted here) and shows ghost text only when a request returns;
 * each new request aborts the one before it (the server then cancels that model call),
 * and an answer that arrives after a newer request started is dropped. Failures never
 * throw into the editor: they are reported once, and after a refusal that will not go
 * away by itself (signed out, no quota, no model) the provider pauses for a while.
 */
import type {
  CompletionHandler,
  IInlineCompletionContext,
  IInlineCompletionList,
  IInlineCompletionProvider
} from '@jupyterlab/completer';
import type { ISettingRegistry } from '@jupyterlab/settingregistry';
import type { LabIcon } from '@jupyterlab/ui-components';
import type { JSONValue } from '@lumino/coreutils';

import { describeFailure, type IFailure } from '../api/failure';
import type { ICompleteRequest, ICompleteResponse } from '../api/protocol';

export const PROVIDER_ID = 'aiide';

/** Characters of code sent around the cursor. */
export const MAX_PREFIX = 6000;
export const MAX_SUFFIX = 2000;

export interface IInlineProviderOptions {
  complete(body: ICompleteRequest, signal: AbortSignal): Promise<ICompleteResponse>;
  /** Text of the cells above the active one, for notebooks ("" elsewhere). */
  textBefore(widget: IInlineCompletionContext['widget']): string;
  /** The document's server path, when it has one. */
  path(widget: IInlineCompletionContext['widget']): string | null;
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
    const now = (this._options.now ?? Date.now)();
    if (now < this._pausedUntil) {
      return EMPTY;
    }
    const controller = new AbortController();
    this._current = controller;
    const body = this._body(request, context);
    if (!body.prefix.trim()) {
      return EMPTY; // an empty cell: nothing to go on
    }
    try {
      const response = await this._options.complete(body, controller.signal);
      if (this._current !== controller) {
        return EMPTY; // a newer request is under way
      }
      return response.completion ? { items: [{ insertText: response.completion }] } : EMPTY;
    } catch (error) {
      if (controller.signal.aborted) {
        return EMPTY;
      }
      const failure = describeFailure(error);
      const pause = PAUSE_MS[failure.kind];
      if (pause) {
        this._pausedUntil = now + pause;
      }
      this._options.onFailure(failure);
      return EMPTY;
    } finally {
      if (this._current === controller) {
        this._current = null;
      }
    }
  }

  private _body(
    request: CompletionHandler.IRequest,
    context: IInlineCompletionContext
  ): ICompleteRequest {
    const before = this._options.textBefore(context.widget);
    const prefix = (before ? `${before}\n\n` : '') + request.text.slice(0, request.offset);
    const path = this._options.path(context.widget);
    return {
      prefix: prefix.slice(-MAX_PREFIX),
      suffix: request.text.slice(request.offset, request.offset + MAX_SUFFIX),
      language: languageOf(request.mimeType).slice(0, 64),
      ...(path ? { path } : {}),
      max_tokens: this._maxTokens
    };
  }

  private readonly _options: IInlineProviderOptions;
  private _current: AbortController | null = null;
  private _pausedUntil = 0;
  private _maxTokens = 96;
}
