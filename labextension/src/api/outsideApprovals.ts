/**
 * Clients for `/aiide/api/mcp/approvals[/<id>]` (docs/mcp.md): the calls of the user's
 * outside agents (MCP clients) that wait for a person's answer.
 *
 * An answer must come from a person: the server accepts it from the browser's session
 * (login cookie + XSRF token), never from the credential that made the call. In a
 * single-user lab the page also holds Jupyter's token, which JupyterLab would send as
 * `Authorization` — the very credential an outside agent configured with that token
 * uses. So answers go without it, on the session alone.
 */
import type { ServerConnection } from '@jupyterlab/services';

import {
  field,
  isNumber,
  isString,
  isStringOrNull,
  listField,
  objectBody
} from './json';
import { requestAPI } from './request';

const WHAT = 'MCP approvals';

/** One paused call, and the run of its agent's conversation that shows it. */
export interface IOutsideApproval {
  id: string;
  tool: string;
  expiresAt: number;
  conversationId: string | null;
  runId: string | null;
}

export function parseOutsideApprovals(data: unknown): IOutsideApproval[] {
  return listField(objectBody(data, WHAT), 'pending', WHAT, '$', (raw, path) => ({
    id: field(raw, 'id', isString, WHAT, path),
    tool: field(raw, 'tool', isString, WHAT, path),
    expiresAt: field(raw, 'expires_at', isNumber, WHAT, path),
    conversationId: field(raw, 'conversation_id', isStringOrNull, WHAT, path),
    runId: field(raw, 'run_id', isStringOrNull, WHAT, path)
  }));
}

/** The user's calls that wait now. */
export async function listOutsideApprovals(
  settings: ServerConnection.ISettings
): Promise<IOutsideApproval[]> {
  return parseOutsideApprovals(await requestAPI('mcp/approvals', settings));
}

export type OutsideDecision =
  | { decision: 'approve' }
  | { decision: 'reject'; reason?: string };

/** Answers one call as the person at this page (cookie + XSRF, no token). */
export async function answerOutsideApproval(
  id: string,
  answer: OutsideDecision,
  settings: ServerConnection.ISettings
): Promise<void> {
  await requestAPI(`mcp/approvals/${encodeURIComponent(id)}`, sessionOnly(settings), {
    method: 'POST',
    body: JSON.stringify(answer)
  });
}

/** The same server, without Jupyter's token: the login cookie and XSRF header remain. */
export function sessionOnly(settings: ServerConnection.ISettings): ServerConnection.ISettings {
  return { ...settings, token: '', init: { ...settings.init, credentials: 'same-origin' } };
}
