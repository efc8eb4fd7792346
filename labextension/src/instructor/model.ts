/**
 * What the instructor dashboard shows, computed from the broker's rows: totals per
 * student, the stacked per-day series of the chart, the bodies of course changes and
 * the audit search query. Pure (no DOM, no requests), so it is unit-tested.
 */
import type { Budget, BudgetKind, Feature, IAuditEvent, ICourse, ILimitHit, IStudentDay } from './api';
import { BUDGET_KINDS, FEATURES } from './api';

/** Day windows offered by the dashboard (the broker keeps 60 days). */
export const WINDOWS = [7, 14, 30] as const;
/** Students drawn as their own series in the chart; the rest are summed as "others". */
export const CHART_STUDENTS = 6;
export const OTHERS = 'others';

function isoDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}

/** The last `days` UTC days up to `today`, oldest first. */
export function dayWindow(days: number, today: Date): string[] {
  const out: string[] = [];
  for (let i = days - 1; i >= 0; i--) {
    out.push(
      isoDay(new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i)))
    );
  }
  return out;
}

/** `?days=N` for usage and limits. */
export function windowQuery(days: number): URLSearchParams {
  return new URLSearchParams({ days: String(days) });
}

export interface IStudentTotal {
  user: string;
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  calls: number;
  /** Days with any use in the window. */
  active_days: number;
  /** Refusals in the window (budget, rate, exam, model), all codes. */
  limit_hits: number;
  /** The refusal codes seen, sorted. */
  limit_codes: string[];
}

/** A student's row before any usage or refusal is counted. */
function noUsage(user: string): IStudentTotal {
  return {
    user,
    input_tokens: 0,
    output_tokens: 0,
    total_tokens: 0,
    calls: 0,
    active_days: 0,
    limit_hits: 0,
    limit_codes: []
  };
}

/** One row per student (including those who were only refused), most tokens first. */
export function studentTotals(
  usage: readonly IStudentDay[],
  limits: readonly ILimitHit[]
): IStudentTotal[] {
  const by = new Map<string, IStudentTotal>();
  const get = (user: string): IStudentTotal => {
    let row = by.get(user);
    if (!row) {
      row = noUsage(user);
      by.set(user, row);
    }
    return row;
  };
  for (const r of usage) {
    const row = get(r.user);
    row.input_tokens += r.input_tokens;
    row.output_tokens += r.output_tokens;
    row.total_tokens += r.total_tokens;
    row.calls += r.calls;
    row.active_days += 1;
  }
  for (const hit of limits) {
    const row = get(hit.user);
    row.limit_hits += hit.count;
    if (!row.limit_codes.includes(hit.code)) {
      row.limit_codes.push(hit.code);
      row.limit_codes.sort();
    }
  }
  return [...by.values()].sort(
    (a, b) => b.total_tokens - a.total_tokens || a.user.localeCompare(b.user)
  );
}

export interface IStackedDays {
  /** Series names: the top students, then `others` when there are more. */
  series: string[];
  days: { day: string; values: number[]; total: number }[];
}

/** Tokens per day, split by student (the `top` heaviest; the rest summed). */
export function stackedDays(
  usage: readonly IStudentDay[],
  days: readonly string[],
  top: number = CHART_STUDENTS
): IStackedDays {
  const totals = studentTotals(usage, []).filter(t => t.total_tokens > 0);
  const named = totals.slice(0, totals.length > top ? top - 1 : top).map(t => t.user);
  const series = totals.length > named.length ? [...named, OTHERS] : named;
  const index = new Map(named.map((user, i) => [user, i]));
  const byDay = new Map(days.map(day => [day, series.map(() => 0)]));
  for (const r of usage) {
    const values = byDay.get(r.day);
    if (!values) {
      continue;
    }
    values[index.get(r.user) ?? series.length - 1] += r.total_tokens;
  }
  return {
    series,
    days: days.map(day => {
      const values = byDay.get(day) ?? [];
      return { day, values, total: values.reduce((a, b) => a + b, 0) };
    })
  };
}

export interface IBarRect {
  day: string;
  series: number;
  value: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Where each segment of the stacked chart goes (SVG units, y down, bottom at `height`). */
export function stackLayout(data: IStackedDays, width: number, height: number): IBarRect[] {
  const max = Math.max(1, ...data.days.map(d => d.total));
  const slot = width / Math.max(1, data.days.length);
  const rects: IBarRect[] = [];
  data.days.forEach((d, i) => {
    let y = height;
    d.values.forEach((value, series) => {
      if (value <= 0) {
        return;
      }
      const h = (value / max) * height;
      y -= h;
      rects.push({ day: d.day, series, value, x: i * slot + slot * 0.15, y, width: slot * 0.7, height: h });
    });
  });
  return rects;
}

const FEATURE_WORDS: Record<Feature, string> = {
  chat: 'chat and agent runs',
  agent: 'agent code execution',
  complete: 'inline completion'
};

export function featureWords(feature: Feature): string {
  return FEATURE_WORDS[feature];
}

/** One line on the exam mode of a course, for the switch's status. */
export function examSummary(course: ICourse): string {
  if (!course.exam.enabled) {
    return `Exam mode is off: students of ${course.course} have the assistant.`;
  }
  const off = course.exam.disable.map(featureWords);
  const what = off.length ? off.join(', ') : 'nothing';
  return `Exam mode is on: ${what} turned off for ${course.groups.join(', ') || 'no group'}.`;
}

/** The PATCH body that switches exam mode; a blank message keeps the course file's. */
export function examChange(
  enabled: boolean,
  disable: readonly Feature[],
  message: string
): { exam: { enabled: boolean; disable: Feature[]; message?: string } } {
  const exam: { enabled: boolean; disable: Feature[]; message?: string } = {
    enabled,
    disable: FEATURES.filter(f => disable.includes(f))
  };
  const text = message.trim();
  if (text) {
    exam.message = text.slice(0, 500);
  }
  return { exam };
}

export type BudgetInput = Partial<Record<BudgetKind, string>>;

/**
 * The PATCH body of a budget change from the form's text fields: a whole number of
 * tokens, or blank for no limit (null). Returns the error to show instead when invalid.
 */
export function budgetChange(
  input: BudgetInput,
  label: (kind: BudgetKind) => string = budgetLabel
): { budget: Partial<Record<BudgetKind, number | null>> } | { error: string } {
  const budget: Partial<Record<BudgetKind, number | null>> = {};
  for (const kind of BUDGET_KINDS) {
    const text = (input[kind] ?? '').trim().replace(/[_\s,]/g, '');
    if (text === '') {
      budget[kind] = null;
    } else if (/^\d{1,12}$/.test(text)) {
      budget[kind] = Number(text);
    } else {
      return { error: `${label(kind)}: give a whole number of tokens, or leave it empty for no limit.` };
    }
  }
  return { budget };
}

export function budgetLabel(kind: BudgetKind): string {
  return kind === 'daily_tokens' ? 'Tokens per student per day' : 'Tokens per student per week';
}

/** A hub user name as the broker takes it (hub/course.py `USERNAME`). */
export function validStudent(name: string): boolean {
  // eslint-disable-next-line no-control-regex
  return /^[^\s/\u0000-\u001f\u007f]{1,255}$/u.test(name);
}

/** The student's own budget in the course, if an instructor gave them one. */
export function ownBudget(course: ICourse, user: string): Budget | undefined {
  return Object.prototype.hasOwnProperty.call(course.student_budgets, user)
    ? course.student_budgets[user]
    : undefined;
}

/** Labels of a student's own budget fields. */
export function studentBudgetLabel(kind: BudgetKind): string {
  return kind === 'daily_tokens' ? 'Tokens per day' : 'Tokens per week';
}

export type StudentBudgetChange = { student_budgets: Record<string, Budget | null> };

/**
 * The PATCH body giving `student` a budget of their own from the form's fields (blank: no
 * limit of that kind for them), or, with `input` null, taking it away (the course's
 * budget applies to them again). Returns the error to show instead when invalid.
 */
export function studentBudgetChange(
  student: string,
  input: BudgetInput | null
): StudentBudgetChange | { error: string } {
  const user = student.trim();
  if (!validStudent(user)) {
    return { error: "Student: give the student's hub user name (no spaces, at most 255 characters)." };
  }
  if (input === null) {
    return { student_budgets: { [user]: null } };
  }
  const change = budgetChange(input, studentBudgetLabel);
  if ('error' in change) {
    return change;
  }
  const own: Budget = {};
  for (const kind of BUDGET_KINDS) {
    const value = change.budget[kind];
    if (typeof value === 'number') {
      own[kind] = value;
    }
  }
  return { student_budgets: { [user]: own } };
}

/** A budget in words: "50,000 tokens a day, no weekly limit". */
export function budgetText(budget: Budget): string {
  const day = budget.daily_tokens;
  const week = budget.weekly_tokens;
  if (day === undefined && week === undefined) {
    return 'no limit';
  }
  return [
    day === undefined ? 'no daily limit' : `${day.toLocaleString()} tokens a day`,
    week === undefined ? 'no weekly limit' : `${week.toLocaleString()} tokens a week`
  ].join(', ');
}

/** Which budget applies to `user` in the course, in words (the table and the form). */
export function studentBudgetText(course: ICourse, user: string): string {
  const own = ownBudget(course, user);
  return own ? `own: ${budgetText(own)}` : `course's: ${budgetText(course.budget)}`;
}

/** The form's line on which budget applies to `user` now. */
export function studentBudgetState(course: ICourse, user: string): string {
  const own = ownBudget(course, user);
  return own
    ? `${user} has a budget of their own: ${budgetText(own)}.`
    : `${user} has the course's budget: ${budgetText(course.budget)}.`;
}

/**
 * The per-student rows plus a zero row for each student with a budget of their own who
 * used nothing in the window (so every such budget can be seen and changed).
 */
export function withOwnBudgets(totals: readonly IStudentTotal[], course: ICourse | undefined): IStudentTotal[] {
  const seen = new Set(totals.map(t => t.user));
  const extra = Object.keys(course?.student_budgets ?? {})
    .filter(user => !seen.has(user))
    .sort()
    .map(noUsage);
  return [...totals, ...extra];
}

export interface IAuditForm {
  q: string;
  action: string;
  actor: string;
  outcome: string;
  /** YYYY-MM-DD or blank. */
  since: string;
  until: string;
}

export const AUDIT_PAGE = 200;
/** The most events one CSV export holds (the broker's cap). */
export const AUDIT_EXPORT = 1000;
/** Actions the broker records, offered as suggestions in the search form. */
export const AUDIT_ACTIONS = [
  'course.changed',
  'course.refused',
  'model.refused',
  'model.used',
  'identity.forged',
  'auth.refused',
  'usage.read',
  'limits.read',
  'audit.read'
];

/** The broker's audit query for the form (blank fields left out), from event id `after`. */
/** The audit search, newest first; `before`: the next page, older than that event. */
export function auditQuery(form: IAuditForm, before = 0, limit = AUDIT_PAGE): URLSearchParams {
  const query = new URLSearchParams();
  for (const key of ['q', 'action', 'actor', 'outcome', 'since', 'until'] as const) {
    const value = form[key].trim();
    if (value) {
      query.set(key, value);
    }
  }
  query.set('limit', String(limit));
  query.set('order', 'newest');
  if (before > 0) {
    query.set('before', String(before));
  }
  return query;
}

/** An event's detail as one line of JSON text, cut to `max` characters. */
export function detailText(detail: unknown, max = 240): string {
  if (detail === null || detail === undefined) {
    return '';
  }
  const text = typeof detail === 'string' ? detail : JSON.stringify(detail);
  return text.length > max ? text.slice(0, max - 1) + '…' : text;
}

/** An audit time (ISO, UTC) as `YYYY-MM-DD HH:MM:SS` UTC. */
export function timeText(iso: string): string {
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})/.exec(iso);
  return match ? `${match[1]} ${match[2]}` : iso;
}

/** The last event id of a page (for `after=`), or 0. */
export function lastId(events: readonly IAuditEvent[]): number {
  return events.length ? events[events.length - 1].id : 0;
}

/** Refusal codes in words (docs/hub.md). */
export function limitWords(code: string): string {
  switch (code) {
    case 'budget_exceeded':
      return 'budget used up';
    case 'rate_limited':
      return 'rate limit';
    case 'exam_mode':
      return 'exam mode';
    case 'model_not_allowed':
      return 'model not allowed';
    default:
      return code.replace(/_/g, ' ');
  }
}

/**
 * Whether `GET /aiide/api/auth/me` says the caller may change courses (scope `course`,
 * what hub group `instructors` maps to). Only then does the lab ask for their courses,
 * so a student's lab never calls the instructor API (nor fills the audit with refusals).
 */
export function mayTeach(me: unknown): boolean {
  if (typeof me !== 'object' || me === null) {
    return false;
  }
  const scopes = (me as Record<string, unknown>).scopes;
  return Array.isArray(scopes) && scopes.includes('course');
}
