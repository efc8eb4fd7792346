/**
 * What went wrong, in words a user can act on: for HTTP failures of the REST routes and
 * for the stable error `code`s of the chat protocol (docs/protocol.md). Switches on
 * codes and statuses, never on server messages.
 */
import { ServerConnection } from '@jupyterlab/services';

import { ApiError } from './request';

export type FailureKind =
  | 'unreachable'
  | 'signed_out'
  | 'forbidden'
  | 'not_installed'
  | 'quota'
  | 'rate_limited'
  | 'no_model'
  | 'provider'
  | 'timeout'
  | 'bad_request'
  | 'server';

export interface IFailure {
  kind: FailureKind;
  /** One or two sentences: what happened and what to do. */
  message: string;
  code: string | null;
}

const SETUP_HELP =
  'No model is configured on the server: set ANTHROPIC_API_KEY (or configure ' +
  'c.Agent.models) and restart JupyterLab.';

function retryIn(seconds: number | null): string {
  if (seconds === null) {
    return 'Wait a moment, then try again.';
  }
  return seconds < 90
    ? `Try again in ${Math.ceil(seconds)} s.`
    : `Try again in ${Math.ceil(seconds / 60)} min.`;
}

type Words = [FailureKind, (serverMessage: string, code: string, retryAfter: number | null) => string];

const PROVIDER_DOWN: Words = [
  'provider',
  (_, code) => `The model provider could not answer (${code}). Try again in a minute.`
];
const NOT_ALLOWED: Words = [
  'forbidden',
  (_, code) => `Your account may not do this (${code}). Ask your administrator for access.`
];

/** Stable codes of the protocol and the gateway, in words; others show the server's text. */
const WORDS: Record<string, Words> = {
  quota_exceeded: [
    'quota',
    m =>
      `You have used up your assistant quota (${m}). It renews at the start of the next ` +
      'period; ask your administrator for more.'
  ],
  rate_limited: ['rate_limited', (_, __, retry) => `Too many requests. ${retryIn(retry)}`],
  forbidden: NOT_ALLOWED,
  insufficient_scope: NOT_ALLOWED,
  admin_required: NOT_ALLOWED,
  no_model: ['no_model', () => SETUP_HELP],
  unknown_model: [
    'bad_request',
    () => 'That model is not available to you any more: pick another one in the model menu.'
  ],
  provider_auth: [
    'provider',
    () => "The model provider refused the server's API key. Ask your administrator to check it."
  ],
  provider_rate_limited: PROVIDER_DOWN,
  provider_overloaded: PROVIDER_DOWN,
  provider_unavailable: PROVIDER_DOWN,
  provider_timeout: PROVIDER_DOWN,
  provider_error: PROVIDER_DOWN,
  provider_bad_request: [
    'provider',
    () => 'The model provider refused the request. Shorten the conversation or start a new one.'
  ],
  kernel_died: [
    'server',
    () => "The notebook's kernel died while running a cell (see the kernel notice)."
  ],
  timeout: ['timeout', () => 'The server took too long to answer. Try again.'],
  run_active: [
    'bad_request',
    () => 'This conversation is still answering: wait for it, or press Stop.'
  ],
  too_large: ['bad_request', () => 'The message is too large. Shorten it or mention fewer files.'],
  limit_exceeded: ['bad_request', m => `The run hit a limit: ${m}`],
  interrupted: ['server', () => 'The server restarted while answering. Ask again to continue.'],
  unknown_conversation: [
    'bad_request',
    () => 'This conversation no longer exists (it was deleted).'
  ],
  already_decided: ['bad_request', () => 'This action was already approved or rejected.'],
  approval_expired: [
    'bad_request',
    () => 'The approval window closed; ask again if you still want it.'
  ],
  run_not_active: ['bad_request', () => 'That run has already finished.'],
  bad_arguments: ['bad_request', m => `The edited arguments are not valid: ${m}`],
  internal: ['server', () => 'The server hit an internal error (details are in its log).']
};

/** Friendly text for an error `code` of the chat protocol or the gateway. */
export function explainCode(
  code: string,
  serverMessage: string,
  retryAfterSeconds: number | null = null
): IFailure {
  const words = WORDS[code];
  if (!words) {
    return {
      kind: 'server',
      message: serverMessage || `The server refused the request (${code}).`,
      code
    };
  }
  return { kind: words[0], message: words[1](serverMessage, code, retryAfterSeconds), code };
}

/** Describes a failed REST call (or any thrown value) for an inline message. */
export function describeFailure(error: unknown): IFailure {
  if (error instanceof ServerConnection.NetworkError) {
    return {
      kind: 'unreachable',
      message: 'The Jupyter server cannot be reached. Check that it is running, then retry.',
      code: null
    };
  }
  if (error instanceof ServerConnection.ResponseError) {
    const status = error.response.status;
    const code = error instanceof ApiError ? error.code : null;
    const retryAfter = error instanceof ApiError ? error.retryAfterSeconds : null;
    if (status === 401) {
      return {
        kind: 'signed_out',
        message: 'You are signed out (401): reload the page to sign in again.',
        code
      };
    }
    if (status === 404 && (code === null || code === 'not_found')) {
      return {
        kind: 'not_installed',
        message:
          'The aiide assistant is not available on this server (404). Check that the aiide ' +
          'server extension is installed and enabled: jupyter server extension list',
        code
      };
    }
    if (code) {
      return explainCode(code, error.message, retryAfter);
    }
    if (status === 403) {
      return explainCode('forbidden', error.message);
    }
    if (status === 429) {
      return explainCode('rate_limited', error.message, retryAfter);
    }
    return {
      kind: 'server',
      message: `The server answered ${status}. Try again; if it persists, check the server log.`,
      code: null
    };
  }
  const text = error instanceof Error ? error.message : String(error);
  return { kind: 'server', message: text, code: null };
}
