/** A student's own budget in the instructor dashboard's logic: the broker's course body,
 * the PATCH bodies, the budget in words, and the table's rows. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { parseCourses } from '../src/instructor/api';
import {
  budgetText,
  ownBudget,
  studentBudgetChange,
  studentBudgetState,
  studentBudgetText,
  studentTotals,
  validStudent,
  withOwnBudgets
} from '../src/instructor/model';

const RAW = {
  course: 'ds101',
  groups: ['students'],
  instructors: ['instructors'],
  models: [],
  budget: { daily_tokens: 100000, weekly_tokens: 400000 },
  student_budgets: { alice: { daily_tokens: 500000 }, dan: {}, eve: 'bad' },
  exam: { enabled: false, disable: ['chat'], message: 'Exam' },
  changes: {}
};

describe("a student's own budget", () => {
  test("the course body carries each student's budget; an older broker's none", () => {
    const [course] = parseCourses({ courses: [RAW] });
    assert.deepEqual(course.student_budgets, { alice: { daily_tokens: 500000 }, dan: {} });
    const { student_budgets: _, ...old } = RAW;
    assert.deepEqual(parseCourses({ courses: [old] })[0].student_budgets, {});
    // Names that are properties of every object are not students.
    assert.equal(ownBudget(course, 'constructor'), undefined);
    assert.equal(ownBudget(course, 'toString'), undefined);
    assert.deepEqual(ownBudget(course, 'dan'), {});
  });

  test('PATCH bodies: blank fields are no limit, null takes the budget away', () => {
    assert.deepEqual(studentBudgetChange(' alice ', { daily_tokens: '50 000', weekly_tokens: '' }), {
      student_budgets: { alice: { daily_tokens: 50000 } }
    });
    assert.deepEqual(studentBudgetChange('bob', { daily_tokens: '', weekly_tokens: '' }), {
      student_budgets: { bob: {} }
    });
    assert.deepEqual(studentBudgetChange('bob', null), { student_budgets: { bob: null } });
    const bad = studentBudgetChange('bob', { daily_tokens: '-1' });
    assert.ok('error' in bad && bad.error.startsWith('Tokens per day:'));
    for (const name of ['', 'a b', 'a/b', 'x'.repeat(256), 'tab\there']) {
      assert.ok('error' in studentBudgetChange(name, null), name);
      assert.equal(validStudent(name), false, name);
    }
    assert.equal(validStudent('x'.repeat(255)), true);
    assert.equal(validStudent('jörg.m@uni'), true);
  });

  test('which budget applies, in words', () => {
    const [course] = parseCourses({ courses: [RAW] });
    const n = (v: number): string => v.toLocaleString();
    assert.equal(budgetText({}), 'no limit');
    assert.equal(budgetText({ weekly_tokens: 5 }), 'no daily limit, 5 tokens a week');
    assert.equal(studentBudgetText(course, 'alice'), `own: ${n(500000)} tokens a day, no weekly limit`);
    assert.equal(studentBudgetText(course, 'dan'), 'own: no limit');
    assert.equal(
      studentBudgetText(course, 'bob'),
      `course's: ${n(100000)} tokens a day, ${n(400000)} tokens a week`
    );
    assert.match(studentBudgetState(course, 'alice'), /^alice has a budget of their own: /);
    assert.match(studentBudgetState(course, 'bob'), /^bob has the course's budget: /);
  });

  test('students with a budget of their own get a row even without usage, after the others', () => {
    const [course] = parseCourses({ courses: [RAW] });
    const usage = [
      { day: '2026-01-02', user: 'alice', input_tokens: 1, output_tokens: 2, total_tokens: 3, calls: 1 },
      { day: '2026-01-02', user: 'zed', input_tokens: 1, output_tokens: 9, total_tokens: 10, calls: 1 }
    ];
    const rows = withOwnBudgets(studentTotals(usage, []), course);
    assert.deepEqual(
      rows.map(r => [r.user, r.total_tokens]),
      [
        ['zed', 10],
        ['alice', 3],
        ['dan', 0]
      ]
    );
    assert.deepEqual(withOwnBudgets([], undefined), []);
  });
});
