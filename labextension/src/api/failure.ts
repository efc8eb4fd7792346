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

/** Friendly text for an error `code` of the chat protocol or the gateway. */
export function explainCode(
  code: string,
  serverMessage: string,
  retryAfterSeconds: number | null = null
): IFailure {
  const make = (kind: FailureKind, message: string): IFailure => ({ kind, message, code });
  switch (code) {
    case 'quota_exceeded':
      return make(
        'quota',
        `You have used up your assistant quota (${serverMessage}). It renews at the start of the next period; ask your administrator for more.`
      );
    case 'rate_limited':
      return make('rate_limited', `Too many requests. ${retryIn(retryAfterSeconds)}`);
    case 'forbidden':
    case 'insufficient_scope':
    case 'admin_required':
      return make(
        'forbidden',
        `Your account may not do this (${code}). Ask your administrator for access.`
      );
    case 'no_model':
      return make('no_model', SETUP_HELP);
    case 'unknown_model':
      return make(
        'bad_request',
        'That model is not available to you any more: pick another one in the model menu.'
      );
    case 'provider_auth':
      return make(
        'provider',
        'The model provider refused the server\'s API key. Ask your administrator to check it.'
      );
    case 'provider_rate_limited':
    case 'provider_overloaded':
    case 'provider_unavailable':
    case 'provider_timeout':
    case 'provider_error':
      return make(
        'provider',
        `The model provider could not answer (${code}). Try again in a minute.`
      );
    case 'timeout':
      return make('timeout', 'The server took too long to answer. Try again.');
    case 'run_active':
      return make(
        'bad_request',
        'This conversation is still answering: wait for it, or press Stop.'
      );
    case 'too_large':
      return make('bad_request', 'The message is too large. Shorten it or mention fewer files.');
    case 'limit_exceeded':
      return make('bad_request', `The run hit a limit: ${serverMessage}`);
    case 'interrupted':
      return make('server', 'The server restarted while answering. Ask again to continue.');
    case 'unknown_conversation':
      return make('bad_request', 'This conversation no longer exists (it was deleted).');
    case 'already_decided':
      return make('bad_request', 'This action was already approved or rejected.');
    case 'approval_expired':
      return make('bad_request', 'The approval window closed; ask again if you still want it.');
    case 'run_not_active':
      return make('bad_request', 'That run has already finished.');
    case 'bad_arguments':
      return make('bad_request', `The edited arguments are not valid: ${serverMessage}`);
    case 'internal':
      return make('server', 'The server hit an internal error (details are in its log).');
    default:
      return make('server', serverMessage || `The server refused the request (${code}).`);
  }
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
