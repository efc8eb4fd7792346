/** The instructor dashboard's logic: response checks, figures, chart geometry, requests. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ServerConnection } from '@jupyterlab/services';

import { ResponseShapeError } from '../src/api/json';
import { ApiError } from '../src/api/request';
import {
  InstructorApi,
  adminPath,
  csvFilename,
  parseAudit,
  parseCourseReply,
  parseCourses,
  parseLimits,
  parseUsageRows
} from '../src/instructor/api';
import { shortNumber } from '../src/instructor/chart';
import { taughtCourses } from '../src/instructor/detect';
import {
  AUDIT_PAGE,
  OTHERS,
  auditQuery,
  budgetChange,
  dayWindow,
  detailText,
  examChange,
  examSummary,
  lastId,
  limitWords,
  mayTeach,
  stackLayout,
  stackedDays,
  studentTotals,
  timeText
} from '../src/instructor/model';

const COURSE = {
  course: 'ds101',
  groups: ['students'],
  instructors: ['instructors'],
  models: ['claude-haiku-4-5'],
  budget: { daily_tokens: 100000, weekly_tokens: 400000 },
  rate_limits: { model: '1000/minute' },
  tools: { edits_need_approval: true },
  exam: { enabled: false, disable: ['chat', 'agent', 'complete'], message: 'Exam mode is on.' },
  changes: {}
};

const day = (d: string, user: string, input: number, output: number, calls = 1) => ({
  day: d,
  user,
  input_tokens: input,
  output_tokens: output,
  total_tokens: input + output,
  calls
});

describe('instructor API bodies', () => {
  test('courses, usage, limits and audit parse as documented', () => {
    const [course] = parseCourses({ courses: [COURSE] });
    assert.equal(course.course, 'ds101');
    assert.deepEqual(course.budget, { daily_tokens: 100000, weekly_tokens: 400000 });
    assert.deepEqual(course.exam.disable, ['chat', 'agent', 'complete']);
    assert.deepEqual(parseUsageRows({ usage: [day('2026-01-02', 'alice', 10, 5)] })[0].total_tokens, 15);
    assert.equal(parseLimits({ limits: [{ day: '2026-01-02', user: 'bob', code: 'rate_limited', count: 3 }] })[0].count, 3);
    const [event] = parseAudit({
      events: [
        {
          id: 7,
          time: '2026-01-02T10:11:12.345+00:00',
          actor: null,
          action: 'auth.refused',
          target: '/x',
          outcome: 'unauthenticated',
          detail: { ip: '127.0.0.1' }
        }
      ]
    });
    assert.equal(event.actor, null);
    assert.deepEqual(event.detail, { ip: '127.0.0.1' });
  });

  test('a budget left out of the course is no budget; unknown features are dropped', () => {
    const [course] = parseCourses({
      courses: [{ ...COURSE, budget: { weekly_tokens: 5 }, exam: { ...COURSE.exam, disable: ['chat', 'kernels'] } }]
    });
    assert.deepEqual(course.budget, { weekly_tokens: 5 });
    assert.deepEqual(course.exam.disable, ['chat']);
  });

  test("a change's answer keeps what it left not working for the instructor to read", () => {
    const warned = parseCourseReply({
      ...COURSE,
      warnings: [{ code: 'no_completion_model', message: 'Inline completion has no model.' }]
    });
    assert.deepEqual(warned.warnings, ['Inline completion has no model.']);
    assert.equal(parseCourseReply(COURSE).warnings, undefined);
  });

  test('a malformed answer names the bad field', () => {
    assert.throws(() => parseUsageRows({ usage: [{ day: 'x', user: 'a' }] }), ResponseShapeError);
    assert.throws(() => parseCourses({ courses: [{ ...COURSE, exam: null }] }), /\$\.courses\[0\]\.exam/);
    assert.throws(() => parseAudit([]), ResponseShapeError);
  });

  test('routes and CSV file names', () => {
    assert.equal(adminPath('courses'), 'course-admin/courses');
    assert.equal(adminPath('usage', new URLSearchParams({ days: '7' })), 'course-admin/usage?days=7');
    assert.equal(csvFilename('attachment; filename="aiide-usage.csv"', 'x.csv'), 'aiide-usage.csv');
    assert.equal(csvFilename(null, 'aiide-audit.csv'), 'aiide-audit.csv');
    // A name with a path or odd characters is not used for the saved file.
    assert.equal(csvFilename('attachment; filename="../../etc/passwd"', 'aiide-audit.csv'), 'aiide-audit.csv');
  });
});

describe('figures per student and day', () => {
  const usage = [
    day('2026-01-01', 'alice', 100, 50, 2),
    day('2026-01-02', 'alice', 10, 5),
    day('2026-01-02', 'bob', 300, 0, 3)
  ];
  const limits = [
    { day: '2026-01-02', user: 'bob', code: 'budget_exceeded', count: 2 },
    { day: '2026-01-02', user: 'bob', code: 'exam_mode', count: 1 },
    { day: '2026-01-02', user: 'carol', code: 'rate_limited', count: 4 }
  ];

  test('totals per student, heaviest first, with who hit which limit', () => {
    const totals = studentTotals(usage, limits);
    assert.deepEqual(
      totals.map(t => [t.user, t.total_tokens, t.calls, t.active_days, t.limit_hits, t.limit_codes]),
      [
        ['bob', 300, 3, 1, 3, ['budget_exceeded', 'exam_mode']],
        ['alice', 165, 3, 2, 0, []],
        ['carol', 0, 0, 0, 4, ['rate_limited']]
      ]
    );
    assert.equal(limitWords('budget_exceeded'), 'budget used up');
    assert.equal(limitWords('new_code'), 'new code');
  });

  test('the window is every UTC day, oldest first', () => {
    assert.deepEqual(dayWindow(3, new Date('2026-03-01T23:30:00Z')), ['2026-02-27', '2026-02-28', '2026-03-01']);
  });

  test('the chart stacks students per day; beyond the top ones they add up as others', () => {
    const days = ['2026-01-01', '2026-01-02', '2026-01-03'];
    const data = stackedDays(usage, days);
    assert.deepEqual(data.series, ['bob', 'alice']);
    assert.deepEqual(data.days.map(d => [d.values, d.total]), [[[0, 150], 150], [[300, 15], 315], [[0, 0], 0]]);
    const many = stackedDays([...usage, day('2026-01-03', 'dan', 1, 0), day('2026-01-03', 'eve', 2, 0)], days, 3);
    assert.deepEqual(many.series, ['bob', 'alice', OTHERS]);
    assert.deepEqual(many.days[2].values, [0, 0, 3]);
  });

  test('bar segments sit on each other and the tallest day fills the height', () => {
    const data = stackedDays(usage, ['2026-01-01', '2026-01-02']);
    const rects = stackLayout(data, 200, 100);
    const second = rects.filter(r => r.day === '2026-01-02');
    assert.equal(second.length, 2);
    assert.ok(Math.abs(second[0].height + second[1].height - 100) < 1e-9);
    assert.ok(Math.abs(second[1].y + second[1].height - second[0].y) < 1e-9);
    const first = rects.filter(r => r.day === '2026-01-01');
    assert.deepEqual(first.map(r => r.series), [1]);
    assert.ok(first[0].x < second[0].x && first[0].x + first[0].width <= 100);
    assert.deepEqual(stackLayout(stackedDays([], ['2026-01-01']), 200, 100), []);
    assert.deepEqual([shortNumber(950), shortNumber(12_345), shortNumber(1_500_000)], ['950', '12.3k', '1.5M']);
  });
});

describe('course changes', () => {
  test('the exam switch sends enabled, the chosen features and the message', () => {
    assert.deepEqual(examChange(true, ['complete', 'chat'], '  Midterm until 12:00 '), {
      exam: { enabled: true, disable: ['chat', 'complete'], message: 'Midterm until 12:00' }
    });
    // A blank message keeps the course file's.
    assert.deepEqual(examChange(false, ['chat'], ''), { exam: { enabled: false, disable: ['chat'] } });
  });

  test('the exam state in words', () => {
    const [course] = parseCourses({ courses: [COURSE] });
    assert.match(examSummary(course), /^Exam mode is off/);
    const on = { ...course, exam: { ...course.exam, enabled: true, disable: ['chat' as const] } };
    assert.equal(examSummary(on), 'Exam mode is on: chat and agent runs turned off for students.');
  });

  test('budgets are whole numbers of tokens; blank is no limit', () => {
    assert.deepEqual(budgetChange({ daily_tokens: '20 000', weekly_tokens: '' }), {
      budget: { daily_tokens: 20000, weekly_tokens: null }
    });
    const bad = budgetChange({ daily_tokens: '-5', weekly_tokens: '100' });
    assert.ok('error' in bad && /per day/.test(bad.error));
    assert.ok('error' in budgetChange({ daily_tokens: '1.5' }));
  });
});

describe('audit search', () => {
  test('blank fields are left out; newest first, paging goes on before the last id', () => {
    const form = { q: ' daily ', action: 'course.changed', actor: '', outcome: '', since: '2026-01-01', until: '' };
    assert.equal(
      auditQuery(form).toString(),
      `q=daily&action=course.changed&since=2026-01-01&limit=${AUDIT_PAGE}&order=newest`
    );
    assert.equal(auditQuery(form, 42, 1000).get('before'), '42');
    assert.equal(auditQuery(form, 42, 1000).get('limit'), '1000');
    assert.equal(lastId([]), 0);
  });

  test('details and times as text', () => {
    assert.equal(detailText({ changes: { exam: { enabled: true } } }), '{"changes":{"exam":{"enabled":true}}}');
    assert.equal(detailText('x'.repeat(300), 10), 'xxxxxxxxx…');
    assert.equal(detailText(null), '');
    assert.equal(timeText('2026-01-02T10:11:12.345+00:00'), '2026-01-02 10:11:12');
  });
});

/** A server that answers from a table of `METHOD path` → [status, body], recording calls. */
function fakeServer(routes: Record<string, [number, unknown, Record<string, string>?]>) {
  const calls: { method: string; path: string; body: string | null }[] = [];
  const fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const request = input instanceof Request ? input : new Request(String(input), init);
    const url = new URL(request.url);
    // ServerConnection adds a cache-busting `&<time>`: not part of the route.
    const query = [...url.searchParams].filter(([k, v]) => !(/^\d+$/.test(k) && v === ''));
    const search = new URLSearchParams(query).toString();
    const path = url.pathname.replace(/^\/aiide\/api\//, '') + (search ? `?${search}` : '');
    const body = request.method === 'GET' ? null : await request.text();
    calls.push({ method: request.method, path, body });
    const answer = routes[`${request.method} ${path}`];
    if (!answer) {
      return new Response(JSON.stringify({ code: 'not_found', message: 'no route' }), { status: 404 });
    }
    const [status, payload, headers] = answer;
    const text = typeof payload === 'string' ? payload : JSON.stringify(payload);
    return new Response(text, { status, headers: headers ?? { 'Content-Type': 'application/json' } });
  };
  const settings = ServerConnection.makeSettings({
    baseUrl: 'http://lab.test/',
    wsUrl: 'ws://lab.test/',
    fetch,
    Request,
    Headers
  } as Partial<ServerConnection.ISettings>);
  return { settings, calls, api: new InstructorApi(settings) };
}

describe('talking to the server', () => {
  test("a student's lab asks who they are and never calls the instructor API", async () => {
    const server = fakeServer({ 'GET auth/me': [200, { user: 'alice', scopes: ['chat', 'usage:read'] }] });
    assert.deepEqual(await taughtCourses(server.settings, server.api), []);
    assert.deepEqual(server.calls.map(c => c.path), ['auth/me']);
    assert.equal(mayTeach(null), false);
  });

  test('an instructor gets their courses; a refusal or a server without a broker gives none', async () => {
    const ok = fakeServer({
      'GET auth/me': [200, { user: 'ian', scopes: ['chat', 'course'] }],
      'GET course-admin/courses': [200, { courses: [COURSE] }]
    });
    assert.deepEqual((await taughtCourses(ok.settings, ok.api)).map(c => c.course), ['ds101']);
    const refused = fakeServer({
      'GET auth/me': [200, { user: 'ian', scopes: ['course'] }],
      'GET course-admin/courses': [403, { code: 'forbidden', message: 'only instructors may list courses' }]
    });
    assert.deepEqual(await taughtCourses(refused.settings, refused.api), []);
    const plain = fakeServer({ 'GET auth/me': [200, { user: 'me', scopes: ['course'] }] });
    assert.deepEqual(await taughtCourses(plain.settings, plain.api), []);
  });

  test('exam mode and budgets are PATCHed to the course; refusals keep their code', async () => {
    const on = { ...COURSE, exam: { ...COURSE.exam, enabled: true } };
    const server = fakeServer({
      'PATCH course/ds101': [200, on],
      'PATCH course/other': [403, { code: 'insufficient_scope', message: "changing a course needs 'course'" }]
    });
    const updated = await server.api.change('ds101', examChange(true, ['chat'], 'Quiz'));
    assert.equal(updated.exam.enabled, true);
    assert.deepEqual(JSON.parse(server.calls[0].body ?? ''), {
      exam: { enabled: true, disable: ['chat'], message: 'Quiz' }
    });
    await assert.rejects(server.api.change('other', { budget: { daily_tokens: 1 } }), (e: unknown) => {
      return e instanceof ApiError && e.code === 'insufficient_scope' && e.response.status === 403;
    });
  });

  test('the CSV export is what the broker sent, under its file name', async () => {
    const csv = 'day,user,input_tokens\r\n2026-01-02,alice,10\r\n';
    const server = fakeServer({
      'GET course-admin/usage?days=7&format=csv': [
        200,
        csv,
        { 'Content-Type': 'text/csv; charset=utf-8', 'Content-Disposition': 'attachment; filename="aiide-usage.csv"' }
      ],
      'GET course-admin/audit?action=x&limit=200&format=csv': [503, { code: 'broker_unavailable', message: 'down' }]
    });
    const file = await server.api.csv('usage', new URLSearchParams({ days: '7' }));
    assert.equal(file.name, 'aiide-usage.csv');
    assert.equal(await file.blob.text(), csv);
    await assert.rejects(
      server.api.csv('audit', new URLSearchParams({ action: 'x', limit: '200' })),
      (e: unknown) => e instanceof ApiError && e.code === 'broker_unavailable'
    );
  });

  test('usage, limits and audit reads carry the query', async () => {
    const server = fakeServer({
      'GET course-admin/usage?days=14': [200, { usage: [day('2026-01-02', 'alice', 1, 2)] }],
      'GET course-admin/limits?days=14': [200, { limits: [] }],
      'GET course-admin/audit?q=exam&limit=200&order=newest': [200, { events: [] }]
    });
    const q = new URLSearchParams({ days: '14' });
    assert.equal((await server.api.usage(q))[0].user, 'alice');
    assert.deepEqual(await server.api.limits(q), []);
    const form = { q: 'exam', action: '', actor: '', outcome: '', since: '', until: '' };
    assert.deepEqual(await server.api.audit(auditQuery(form)), []);
  });
});
