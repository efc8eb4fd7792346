/**
 * Client for the knowledge index (`/aiide/api/knowledge/...`, docs/knowledge.md): `/learn`
 * starts and watches jobs, `@` mentions search it.
 */
import type { ServerConnection } from '@jupyterlab/services';

import { parseJobReport, type IJobProgress } from '../knowledge/progress';
import type { ICitation } from './protocol';
import { ResponseShapeError, isObject } from './json';
import { requestAPI } from './request';

const WHAT = 'knowledge job';

function job(data: unknown): IJobProgress {
  const parsed = parseJobReport(data);
  if (!parsed) {
    throw new ResponseShapeError(WHAT, '$');
  }
  return parsed;
}

/** Starts indexing a file or folder ("" is the whole server root). */
export async function startLearning(
  path: string,
  settings: ServerConnection.ISettings
): Promise<IJobProgress> {
  const init: RequestInit = { method: 'POST', body: JSON.stringify({ path }) };
  return job(await requestAPI('knowledge/index', settings, init));
}

export async function fetchJob(
  id: string,
  settings: ServerConnection.ISettings
): Promise<IJobProgress> {
  return job(await fetchReport(id, settings));
}

/** A file a job left out or could not read, and why (the report's words). */
export interface IJobFile {
  path: string;
  reason: string;
}

/** A job's report: its progress, the files it left out or could not read, and its code. */
export interface IJobReport {
  job: IJobProgress;
  skipped: IJobFile[];
  errors: IJobFile[];
  /** Why a failed job failed (`model_unavailable`, `model_install_failed`, `internal`); '' else. */
  code: string;
}

function files(raw: unknown): IJobFile[] {
  return Array.isArray(raw)
    ? raw.flatMap(f =>
        isObject(f) && typeof f.path === 'string' && typeof f.reason === 'string'
          ? [{ path: f.path, reason: f.reason }]
          : []
      )
    : [];
}

/** The whole report of job `id`, lists included (the progress events carry only totals). */
export async function fetchJobReport(
  id: string,
  settings: ServerConnection.ISettings
): Promise<IJobReport> {
  const data = await fetchReport(id, settings);
  const body = isObject(data) ? data : {};
  return {
    job: job(data),
    skipped: files(body.skipped),
    errors: files(body.errors),
    code: typeof body.code === 'string' ? body.code : ''
  };
}

function fetchReport(id: string, settings: ServerConnection.ISettings): Promise<unknown> {
  return requestAPI(`knowledge/jobs/${encodeURIComponent(id)}`, settings);
}

/** One search result: where it is (as a citation) and the start of its text. */
export interface IKnowledgeHit {
  citation: ICitation;
  kind: string;
  score: number;
  text: string;
}

const nullableInt = (v: unknown): number | null =>
  typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : null;

/** A search result of `GET knowledge/search`, or null when it has no path. */
export function parseHit(raw: unknown): IKnowledgeHit | null {
  if (!isObject(raw) || typeof raw.path !== 'string' || !raw.path) {
    return null;
  }
  const cellId = typeof raw.cell_id === 'string' && raw.cell_id ? raw.cell_id : null;
  return {
    citation: {
      path: raw.path,
      cell_id: cellId,
      cell_index: nullableInt(raw.cell_index),
      line_start: nullableInt(raw.line_start),
      line_end: nullableInt(raw.line_end),
      title: typeof raw.title === 'string' ? raw.title : '',
      label: typeof raw.citation === 'string' && raw.citation ? raw.citation : raw.path
    },
    kind: typeof raw.kind === 'string' ? raw.kind : '',
    score: typeof raw.score === 'number' ? raw.score : 0,
    text: typeof raw.text === 'string' ? raw.text : ''
  };
}

/** The caller's own index searched for `query` (empty when nothing is indexed). */
export async function searchKnowledge(
  query: string,
  settings: ServerConnection.ISettings,
  k = 8
): Promise<IKnowledgeHit[]> {
  const q = encodeURIComponent(query);
  const body = await requestAPI(`knowledge/search?q=${q}&k=${k}`, settings);
  if (!isObject(body) || !Array.isArray(body.results)) {
    throw new ResponseShapeError('knowledge search', '$.results');
  }
  return body.results.map(parseHit).filter((h): h is IKnowledgeHit => h !== null);
}
