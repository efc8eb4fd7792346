/** Clients for `/aiide/api/agent/conversations[/<id>]` (docs/protocol.md, REST). */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

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
import { API_PREFIX, ApiError, requestAPI } from './request';

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

/** A search hit: the summary and the words around the hit (null: the title matched). */
export interface IConversationMatch extends IConversationSummary {
  snippet: string | null;
}

export function parseConversationMatches(data: unknown): IConversationMatch[] {
  return listField(objectBody(data, WHAT), 'conversations', WHAT, '$', (raw, path) => ({
    ...summary(raw, path),
    snippet: field(raw, 'snippet', isStringOrNull, WHAT, path)
  }));
}

/** The caller's conversations whose title or text contains `query` (searched on the server). */
export async function searchConversations(
  query: string,
  settings: ServerConnection.ISettings
): Promise<IConversationMatch[]> {
  const path = `agent/conversations?q=${encodeURIComponent(query)}`;
  return parseConversationMatches(await requestAPI(path, settings));
}

/** Renames a conversation on the server; answers its summary with the stored title. */
export async function renameConversation(
  id: string,
  title: string,
  settings: ServerConnection.ISettings
): Promise<IConversationSummary> {
  const path = `agent/conversations/${encodeURIComponent(id)}`;
  const body = await requestAPI(path, settings, {
    method: 'PATCH',
    body: JSON.stringify({ title })
  });
  return summary(objectBody(body, WHAT), '$');
}

export type ExportFormat = 'markdown' | 'ipynb';

export interface IExportedFile {
  name: string;
  type: string;
  text: string;
}

/** The file name of a `Content-Disposition` header (RFC 6266: `filename*` wins). */
export function dispositionName(header: string | null, fallback: string): string {
  if (!header) {
    return fallback;
  }
  const star = /filename\*=UTF-8''([^;]+)/i.exec(header);
  if (star) {
    try {
      return decodeURIComponent(star[1].trim());
    } catch {
      // a malformed escape: the plain name below
    }
  }
  const plain = /filename="([^"]*)"/i.exec(header);
  return plain?.[1] || fallback;
}

/** The conversation as a Markdown file or a notebook, as the server renders it. */
export async function exportConversation(
  id: string,
  format: ExportFormat,
  settings: ServerConnection.ISettings
): Promise<IExportedFile> {
  const path = `agent/conversations/${encodeURIComponent(id)}/export?format=${format}`;
  const url = URLExt.join(settings.baseUrl, API_PREFIX, path);
  const response = await ServerConnection.makeRequest(url, {}, settings);
  const text = await response.text();
  if (!response.ok) {
    let body: unknown = null;
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
    const data = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
    throw new ApiError(
      response,
      typeof data.message === 'string' ? data.message : undefined,
      typeof data.code === 'string' ? data.code : null,
      null
    );
  }
  const fallback = format === 'ipynb' ? 'conversation.ipynb' : 'conversation.md';
  return {
    name: dispositionName(response.headers.get('Content-Disposition'), fallback),
    type: response.headers.get('Content-Type') ?? 'application/octet-stream',
    text
  };
}
