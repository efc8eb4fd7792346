/**
 * Client for the instructor API: `GET /aiide/api/course-admin/{courses,usage,limits,audit}`
 * (the single-user server relays it to the key broker with the hub token) and
 * `PATCH /aiide/api/course/<name>` (exam mode, budgets, students' own budgets). Bodies are checked here, so the
 * panel only ever sees the documented shapes (docs/hub.md, "Instructor API").
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  field,
  isBoolean,
  isNumber,
  isObject,
  isString,
  isStringOrNull,
  listField,
  objectBody,
  type Json
} from '../api/json';
import { API_PREFIX, ApiError, requestAPI } from '../api/request';
import { type IHelpReport, parseHelp } from './help';

/** Features exam mode can turn off (hub/course.py FEATURES). */
export const FEATURES = ['chat', 'agent', 'complete'] as const;
export type Feature = (typeof FEATURES)[number];

export type BudgetKind = 'daily_tokens' | 'weekly_tokens';
export const BUDGET_KINDS: readonly BudgetKind[] = ['daily_tokens', 'weekly_tokens'];
/** A token budget: a kind left out has no limit. */
export type Budget = Partial<Record<BudgetKind, number>>;

export interface IExam {
  enabled: boolean;
  disable: Feature[];
  message: string;
  /** A scheduled exam (ISO times, UTC): on from start to end; null: none. */
  start?: string | null;
  end?: string | null;
}

/** A course as the broker applies it now: the file plus run-time changes. */
export interface ICourse {
  course: string;
  groups: string[];
  instructors: string[];
  models: string[];
  budget: Budget;
  /** Students with a budget of their own, which replaces `budget` for them. */
  student_budgets: Record<string, Budget>;
  exam: IExam;
  /** Shown to students at the top of their chat (hub/notices.py). */
  announcement?: string;
  rules?: string;
  /** The run-time changes on top of the file (instructors' edits). */
  changes: Json;
  /** Only in the answer to a change: what it left not working (e.g. no completion model). */
  warnings?: string[];
}

export interface IStudentDay {
  day: string;
  user: string;
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  calls: number;
}

export interface ILimitHit {
  day: string;
  user: string;
  /** budget_exceeded, rate_limited, exam_mode, model_not_allowed, … */
  code: string;
  count: number;
}

export interface IAuditEvent {
  id: number;
  /** ISO 8601, UTC. */
  time: string;
  actor: string | null;
  action: string;
  target: string;
  outcome: string;
  detail: unknown;
}

const isStringList = (v: unknown): v is string[] =>
  Array.isArray(v) && v.every(item => typeof item === 'string');

function parseBudget(raw: Json): Budget {
  const budget: Budget = {};
  for (const kind of BUDGET_KINDS) {
    if (isNumber(raw[kind])) {
      budget[kind] = raw[kind] as number;
    }
  }
  return budget;
}

function parseCourse(raw: Json, path: string): ICourse {
  const what = 'course';
  const exam = field(raw, 'exam', isObject, what, path);
  const budget = parseBudget(field(raw, 'budget', isObject, what, path));
  // A broker from before per-student budgets sends none: nobody has one.
  const students: Record<string, Budget> = {};
  if (isObject(raw.student_budgets)) {
    for (const [user, own] of Object.entries(raw.student_budgets)) {
      if (isObject(own)) {
        students[user] = parseBudget(own);
      }
    }
  }
  const disable = field(exam, 'disable', isStringList, what, `${path}.exam`);
  return {
    course: field(raw, 'course', isString, what, path),
    groups: field(raw, 'groups', isStringList, what, path),
    instructors: field(raw, 'instructors', isStringList, what, path),
    models: field(raw, 'models', isStringList, what, path),
    budget,
    student_budgets: students,
    exam: {
      enabled: field(exam, 'enabled', isBoolean, what, `${path}.exam`),
      disable: disable.filter((f): f is Feature => (FEATURES as readonly string[]).includes(f)),
      message: field(exam, 'message', isString, what, `${path}.exam`),
      start: isString(exam.start) ? exam.start : null,
      end: isString(exam.end) ? exam.end : null
    },
    // A broker from before notices sends none.
    announcement: isString(raw.announcement) ? raw.announcement : '',
    rules: isString(raw.rules) ? raw.rules : '',
    changes: isObject(raw.changes) ? raw.changes : {}
  };
}

export function parseCourses(data: unknown): ICourse[] {
  return listField(objectBody(data, 'courses'), 'courses', 'courses', '$', parseCourse);
}

export function parseCourseReply(data: unknown): ICourse {
  const body = objectBody(data, 'course');
  const course = parseCourse(body, '$');
  const raw = body['warnings'];
  const warnings = Array.isArray(raw)
    ? raw.flatMap(w => (isObject(w) && typeof w['message'] === 'string' ? [w['message'] as string] : []))
    : [];
  return warnings.length ? { ...course, warnings } : course;
}

export function parseUsageRows(data: unknown): IStudentDay[] {
  const what = 'course usage';
  return listField(objectBody(data, what), 'usage', what, '$', (raw, path) => ({
    day: field(raw, 'day', isString, what, path),
    user: field(raw, 'user', isString, what, path),
    input_tokens: field(raw, 'input_tokens', isNumber, what, path),
    output_tokens: field(raw, 'output_tokens', isNumber, what, path),
    total_tokens: field(raw, 'total_tokens', isNumber, what, path),
    calls: field(raw, 'calls', isNumber, what, path)
  }));
}

export function parseLimits(data: unknown): ILimitHit[] {
  const what = 'limits';
  return listField(objectBody(data, what), 'limits', what, '$', (raw, path) => ({
    day: field(raw, 'day', isString, what, path),
    user: field(raw, 'user', isString, what, path),
    code: field(raw, 'code', isString, what, path),
    count: field(raw, 'count', isNumber, what, path)
  }));
}

export function parseAudit(data: unknown): IAuditEvent[] {
  const what = 'audit';
  return listField(objectBody(data, what), 'events', what, '$', (raw, path) => ({
    id: field(raw, 'id', isNumber, what, path),
    time: field(raw, 'time', isString, what, path),
    actor: field(raw, 'actor', isStringOrNull, what, path),
    action: field(raw, 'action', isString, what, path),
    target: field(raw, 'target', isString, what, path),
    outcome: field(raw, 'outcome', isString, what, path),
    detail: raw.detail ?? null
  }));
}

/** One student of the roster (`GET api/roster`): started or not, today against budget. */
export interface IRosterRow {
  user: string;
  started: boolean;
  used_today: number;
  used_this_week: number;
  daily_budget: number | null;
  weekly_budget: number | null;
  own_budget: boolean;
  active_days: number;
  last_active: string | null;
  tokens: number;
  calls: number;
  limit_hits: number;
}

const isNumberOrNull = (v: unknown): v is number | null => v === null || typeof v === 'number';

export function parseRoster(data: unknown): IRosterRow[] {
  const what = 'roster';
  return listField(objectBody(data, what), 'students', what, '$', (raw, path) => ({
    user: field(raw, 'user', isString, what, path),
    started: field(raw, 'started', isBoolean, what, path),
    used_today: field(raw, 'used_today', isNumber, what, path),
    used_this_week: field(raw, 'used_this_week', isNumber, what, path),
    daily_budget: field(raw, 'daily_budget', isNumberOrNull, what, path),
    weekly_budget: field(raw, 'weekly_budget', isNumberOrNull, what, path),
    own_budget: field(raw, 'own_budget', isBoolean, what, path),
    active_days: field(raw, 'active_days', isNumber, what, path),
    last_active: field(raw, 'last_active', isStringOrNull, what, path),
    tokens: field(raw, 'tokens', isNumber, what, path),
    calls: field(raw, 'calls', isNumber, what, path),
    limit_hits: field(raw, 'limit_hits', isNumber, what, path)
  }));
}

/** A conversation a student shares (`GET api/shares`); `transcript` only when read. */
export interface IShare {
  id: string;
  user: string;
  conversation: string;
  courses: string[];
  title: string;
  note: string;
  /** ISO 8601, UTC. */
  shared_at: string;
  transcript?: string;
}

function parseShare(raw: Json, path: string): IShare {
  const what = 'shared conversation';
  return {
    id: field(raw, 'id', isString, what, path),
    user: field(raw, 'user', isString, what, path),
    conversation: field(raw, 'conversation', isString, what, path),
    courses: field(raw, 'courses', isStringList, what, path),
    title: field(raw, 'title', isString, what, path),
    note: field(raw, 'note', isString, what, path),
    shared_at: field(raw, 'shared_at', isString, what, path),
    ...(isString(raw.transcript) ? { transcript: raw.transcript } : {})
  };
}

export function parseShares(data: unknown): IShare[] {
  return listField(objectBody(data, 'shares'), 'shares', 'shares', '$', parseShare);
}

export function parseShareReply(data: unknown): IShare {
  return parseShare(objectBody(data, 'shared conversation'), '$');
}

/** The instructor API kinds the single-user server relays (hub/singleuser/handlers.py). */
export type AdminKind = 'courses' | 'usage' | 'limits' | 'audit' | 'roster' | 'export' | 'shares' | 'help';

export function adminPath(kind: AdminKind, query: URLSearchParams = new URLSearchParams()): string {
  const text = query.toString();
  return `course-admin/${kind}${text ? `?${text}` : ''}`;
}

export class InstructorApi {
  constructor(readonly settings: ServerConnection.ISettings) {}

  async courses(): Promise<ICourse[]> {
    return parseCourses(await requestAPI(adminPath('courses'), this.settings));
  }

  async usage(query: URLSearchParams): Promise<IStudentDay[]> {
    return parseUsageRows(await requestAPI(adminPath('usage', query), this.settings));
  }

  async limits(query: URLSearchParams): Promise<ILimitHit[]> {
    return parseLimits(await requestAPI(adminPath('limits', query), this.settings));
  }

  async audit(query: URLSearchParams): Promise<IAuditEvent[]> {
    return parseAudit(await requestAPI(adminPath('audit', query), this.settings));
  }

  /** Every student of the course, those who have not started included. */
  async roster(course: string, days: number): Promise<IRosterRow[]> {
    const query = new URLSearchParams({ course, days: String(days) });
    return parseRoster(await requestAPI(adminPath('roster', query), this.settings));
  }

  /** Help used per student and assignment: hint levels, fixes, tokens (help.ts). */
  async help(course: string): Promise<IHelpReport> {
    return parseHelp(await requestAPI(adminPath('help', new URLSearchParams({ course })), this.settings));
  }

  /** Conversations the course's students share (summaries, no transcript). */
  async shares(course: string): Promise<IShare[]> {
    return parseShares(await requestAPI(adminPath('shares', new URLSearchParams({ course })), this.settings));
  }

  /** One shared conversation with its transcript (audited as `conversation.read`). */
  async share(id: string): Promise<IShare> {
    return parseShareReply(await requestAPI(`course-admin/shares/${encodeURIComponent(id)}`, this.settings));
  }

  /** Applies a run-time change (audited by the broker as `course.changed`). */
  async change(course: string, body: Json): Promise<ICourse> {
    const reply = await requestAPI(`course/${encodeURIComponent(course)}`, this.settings, {
      method: 'PATCH',
      body: JSON.stringify(body)
    });
    return parseCourseReply(reply);
  }

  /** The broker's CSV export of `kind` (same query plus `format=csv`), as a file. */
  async csv(kind: AdminKind, query: URLSearchParams): Promise<{ name: string; blob: Blob }> {
    const q = new URLSearchParams(query);
    q.set('format', 'csv');
    const url = URLExt.join(this.settings.baseUrl, API_PREFIX, adminPath(kind, q));
    const response = await ServerConnection.makeRequest(url, {}, this.settings);
    if (!response.ok) {
      let body: unknown = null;
      try {
        body = await response.json();
      } catch {
        body = null;
      }
      const get = (k: string): string | undefined =>
        isObject(body) && typeof body[k] === 'string' ? (body[k] as string) : undefined;
      throw new ApiError(response, get('message'), get('code') ?? null, null);
    }
    const name = csvFilename(response.headers.get('Content-Disposition'), `aiide-${kind}.csv`);
    return { name, blob: await response.blob() };
  }
}

/** The file name of a `Content-Disposition` header (a plain, safe one), else `fallback`. */
export function csvFilename(disposition: string | null, fallback: string): string {
  const match = /filename="?([^";]+)"?/i.exec(disposition ?? '');
  const name = match ? match[1].trim() : '';
  return /^[\w.-]+$/.test(name) ? name : fallback;
}
