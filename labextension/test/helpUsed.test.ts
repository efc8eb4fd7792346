/**
 * The dashboard's help used (issue 15, tutoring): the broker's report parsed as documented
 * (a body of another shape is refused, naming the field), the modes with their deadlines,
 * one row per student and assignment with each cell's hint level, all set as text.
 */
import { document, window } from './dom';
import './assetHooks';

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import { adminPath } from '../src/instructor/api';
import { cellsText, helpView, modeText, parseHelp } from '../src/instructor/help';

after(() => window.happyDOM.close());

const REPORT = {
  course: 'ds101',
  hint_levels: 3,
  assignments: [
    { name: 'ps1', path: 'ps1/*', mode: 'tutor', mode_now: 'tutor', deadline: '2026-12-10T11:00:00+00:00', after_deadline: 'open' },
    { name: 'final', path: 'exams/*', mode: 'exam', mode_now: 'exam', deadline: null, after_deadline: 'open' }
  ],
  help: [
    {
      student_id: 'alice',
      assignment: 'ps1',
      course: 'ds101',
      help_hints: 4,
      help_max_hint_level: 3,
      help_cells: 2,
      help_fixes: 1,
      help_tokens: 12345,
      cells: { squares: 3, why: 1 }
    },
    {
      student_id: '<img src=x onerror=alert(1)>',
      assignment: '',
      course: 'ds101',
      help_hints: 1,
      help_max_hint_level: 1,
      help_cells: 1,
      help_fixes: 0,
      help_tokens: 10,
      cells: { 'cell-9': 1 }
    }
  ]
};

describe('help used', () => {
  test('the report is parsed and a wrong shape names its field', () => {
    const report = parseHelp(REPORT);
    assert.equal(report.help[0].cells.squares, 3);
    assert.equal(report.assignments[1].deadline, null);
    assert.throws(() => parseHelp({ ...REPORT, help: [{ ...REPORT.help[0], help_hints: '4' }] }), /help_hints/);
    assert.throws(() => parseHelp({ ...REPORT, help: [{ ...REPORT.help[0], cells: { a: 'x' } }] }), /cells\.a/);
    assert.throws(() => parseHelp([]), /help/);
  });

  test('modes say what a student gets now and when it switches', () => {
    const [ps1, final] = parseHelp(REPORT).assignments;
    assert.match(modeText(ps1), /^tutor until .*2026/);
    assert.equal(modeText(final), 'exam');
    assert.match(modeText({ ...ps1, mode_now: 'open' }), /^open \(since .*2026/);
  });

  test('one row per student and assignment, cells by level, as text', () => {
    const report = parseHelp(REPORT);
    assert.equal(cellsText(report.help[0], 3), 'squares 3/3, why 1/3');
    const view = helpView(report);
    document.body.append(view);
    const rows = [...view.querySelectorAll('tbody tr')].map(tr => [...tr.children].map(td => td.textContent));
    assert.deepEqual(rows[0], ['alice', 'ps1', '4', '3/3', 'squares 3/3, why 1/3', '1', (12345).toLocaleString()]);
    assert.equal(rows[1][0], '<img src=x onerror=alert(1)>');
    assert.equal(rows[1][1], '(course-wide)');
    assert.equal(view.querySelector('img'), null); // a name is text, never markup
    assert.equal(view.querySelectorAll('li').length, 2);
    view.remove();
  });

  test('an empty report says so', () => {
    const view = helpView(parseHelp({ ...REPORT, assignments: [], help: [] }));
    assert.match(view.textContent ?? '', /No student has asked for help/);
    assert.match(view.textContent ?? '', /course-wide mode applies/);
  });

  test('the CSV export asks the relayed broker route', () => {
    assert.equal(adminPath('help', new URLSearchParams({ course: 'ds101', format: 'csv' })).endsWith('course-admin/help?course=ds101&format=csv'), true);
  });
});
