/** Clients for `/aiide/api/agent/conversations[/<id>]` (docs/protocol.md, REST). */
import type { ServerConnection } from '@jupyterlab/services';

import {
  field,
  isNumber,
  isString,
  isStringOrNull,
  listField,
  objectBody,
  type Json
} from './json';
import type { IConversationDetail, IConversationSummary, ITurn } from './protocol';
import { requestAPI } from './request';

const WHAT = 'conversations';

function summary(raw: Json, path: string): IConversationSummary {
  return {
    id: field(raw, 'id', isString, WHAT, path),
    title: field(raw, 'title', isString, WHAT, path),
    created: field(raw, 'created', isNumber, WHAT, path),
    updated: field(raw, 'updated', isNumber, WHAT, path),
    last_seq: field(raw, 'last_seq', isNumber, WHAT, path),
    active_run: field(raw, 'active_run', isStringOrNull, WHAT, path)
  };
}

const isRole = (v: unknown): v is ITurn['role'] => v === 'user' || v === 'assistant';

export function parseConversationList(data: unknown): IConversationSummary[] {
  return listField(objectBody(data, WHAT), 'conversations', WHAT, '$', summary);
}

export function parseConversationDetail(data: unknown): IConversationDetail {
  const body = objectBody(data, WHAT);
  return {
    ...summary(body, '$'),
    turns: listField(body, 'turns', WHAT, '$', (raw, path) => ({
      role: field(raw, 'role', isRole, WHAT, path),
      text: field(raw, 'text', isString, WHAT, path),
      run_id: field(raw, 'run_id', isStringOrNull, WHAT, path)
    })),
    runs: listField(body, 'runs', WHAT, '$', (raw, path) => ({
      id: field(raw, 'id', isString, WHAT, path),
      state: field(raw, 'state', isString, WHAT, path),
      usage: objectBody(raw.usage ?? {}, WHAT)
    }))
  };
}

/** The caller's conversations, newest first. */
export async function listConversations(
  settings: ServerConnection.ISettings
): Promise<IConversationSummary[]> {
  return parseConversationList(await requestAPI('agent/conversations', settings));
}

export async function getConversation(
  id: string,
  settings: ServerConnection.ISettings
): Promise<IConversationDetail> {
  const path = `agent/conversations/${encodeURIComponent(id)}`;
  return parseConversationDetail(await requestAPI(path, settings));
}

/** Deletes a conversation (a running run is cancelled first, by the server). */
export async function deleteConversation(
  id: string,
  settings: ServerConnection.ISettings
): Promise<void> {
  const path = `agent/conversations/${encodeURIComponent(id)}`;
  await requestAPI(path, settings, { method: 'DELETE' });
}
