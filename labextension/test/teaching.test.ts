/**
 * The dashboard's teaching tools and the student's course notice (issue 21, finding 10):
 * times typed in the instructor's zone go to the broker as UTC and back, the schedule
 * line, the class's model list, the class list marking who has not started, a shared
 * conversation shown as text only, the notices a student reads before any refusal.
 */
import { document, window } from './dom';
import './assetHooks';

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import type { ICourse, IRosterRow } from '../src/instructor/api';
import { examLine, parseNotices } from '../src/instructor/notice';
import { isoOf, localInput, modelList, rosterTable, scheduleText, transcriptView } from '../src/instructor/teaching';

after(() => window.happyDOM.close());

const exam = (start: string | null, end: string | null): ICourse['exam'] => ({
  enabled: false,
  disable: ['chat'],
  message: 'Quiz',
  start,
  end
});

const course = (start: string | null, end: string | null): ICourse => ({
  course: 'ds101',
  groups: ['students'],
  instructors: ['instructors'],
  models: [],
  budget: {},
  student_budgets: {},
  exam: exam(start, end),
  announcement: '',
  rules: '',
  changes: {}
});

const row = (user: string, started: boolean): IRosterRow => ({
  user,
  started,
  used_today: started ? 1200 : 0,
  used_this_week: started ? 1200 : 0,
  daily_budget: 5000,
  weekly_budget: null,
  own_budget: false,
  active_days: started ? 1 : 0,
  last_active: started ? '2026-12-07' : null,
  tokens: 1200,
  calls: 2,
  limit_hits: 0
});

describe('teaching tools', () => {
  test('a time typed in the browser goes to the broker as UTC and comes back the same', () => {
    const iso = isoOf('2026-12-08T10:30');
    assert.ok(iso && iso.endsWith('Z'));
    assert.equal(localInput(iso), '2026-12-08T10:30');
    assert.equal(isoOf(''), null);
    assert.equal(localInput(null), '');
  });

  test('the schedule line says whether the exam is coming, on or over', () => {
    const c = course('2026-12-08T10:00:00+00:00', '2026-12-08T12:00:00+00:00');
    assert.match(scheduleText(c, new Date('2026-12-08T09:00:00Z')), /^Exam scheduled: /);
    assert.match(scheduleText(c, new Date('2026-12-08T11:00:00Z')), /^Exam on now/);
    assert.match(scheduleText(c, new Date('2026-12-08T12:00:00Z')), /^Exam over/);
    assert.equal(scheduleText(course(null, null), new Date()), 'No exam scheduled.');
  });

  test('the class model list is split on commas and spaces, without repeats', () => {
    assert.deepEqual(modelList(' claude-haiku-4-5, gpt-4o-mini  claude-haiku-4-5,'), [
      'claude-haiku-4-5',
      'gpt-4o-mini'
    ]);
  });

  test('the class list shows who has not started and today against the budget', () => {
    const table = rosterTable([row('alice', true), row('dana', false)]);
    document.body.append(table);
    assert.match(table.querySelector('caption')?.textContent ?? '', /2 students, 1 started, 1 not started/);
    const dana = table.querySelector('tr[data-user="dana"]');
    assert.ok(dana?.classList.contains('aiide-Instructor-notStarted'));
    assert.match(dana?.textContent ?? '', /not started/);
    assert.match(table.querySelector('tr[data-user="alice"]')?.textContent ?? '', /1,200 \/ 5,000/);
  });

  test('a shared conversation is shown as text, never as HTML', () => {
    const view = transcriptView(
      {
        id: 's1',
        user: 'alice',
        conversation: 'c1',
        courses: ['ds101'],
        title: 'Help',
        note: '',
        shared_at: '2026-12-07T10:00:00+00:00',
        transcript: '<img src=x onerror=alert(1)> **q3**'
      },
      () => undefined
    );
    assert.equal(view.querySelector('img'), null);
    assert.equal(view.querySelector('pre')?.textContent, '<img src=x onerror=alert(1)> **q3**');
  });
});

describe('course notice', () => {
  test('notices are read defensively and the exam line says when', () => {
    const [n] = parseNotices({
      notices: [
        {
          course: 'ds101',
          announcement: 'Lab 3 due',
          rules: 7,
          exam: { on: true, start: null, end: '2026-12-08T12:00:00+00:00', off: ['chat'], message: 'Quiz' },
          limits: ['5,000 tokens a day']
        }
      ]
    });
    assert.equal(n.announcement, 'Lab 3 due');
    assert.equal(n.rules, '');
    assert.match(examLine(n.exam!), /^Exam in progress until .+ \(chat off\): Quiz$/);
    assert.deepEqual(parseNotices({}), []);
  });
});
