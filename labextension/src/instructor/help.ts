/**
 * Help used per assignment and student (`GET /aiide/api/course-admin/help?course=…`,
 * hub/broker/helpuse.py): the course's help modes (open, tutor, exam, with deadlines) and,
 * per student and assignment, the hints asked, the highest hint level reached, fixes and
 * tokens. Its CSV joins nbgrader's grades export on `student_id` and `assignment`.
 * Every value is set as text.
 */
import { field, isNumber, isObject, isString, isStringOrNull, listField, objectBody, type Json } from '../api/json';
import { h } from '../ui/dom';
import { momentText } from '../ui/moment';

export interface IAssignmentHelp {
  name: string;
  path: string;
  mode: string;
  /** The mode now (after the deadline: `after_deadline`). */
  mode_now: string;
  deadline: string | null;
}

export interface IHelpRow {
  student_id: string;
  assignment: string;
  help_hints: number;
  help_max_hint_level: number;
  help_cells: number;
  help_fixes: number;
  help_tokens: number;
  /** Cell (nbgrader grade_id, or cell id) -> hint level reached. */
  cells: Record<string, number>;
}

export interface IHelpReport {
  course: string;
  hint_levels: number;
  assignments: IAssignmentHelp[];
  help: IHelpRow[];
}

function levels(raw: Json, path: string): Record<string, number> {
  const value = raw.cells;
  if (!isObject(value)) {
    throw new Error(`help: ${path}.cells must be an object`);
  }
  const out: Record<string, number> = {};
  for (const [cell, level] of Object.entries(value)) {
    if (!isNumber(level)) {
      throw new Error(`help: ${path}.cells.${cell} must be a number`);
    }
    out[cell] = level;
  }
  return out;
}

export function parseHelp(data: unknown): IHelpReport {
  const what = 'help';
  const body = objectBody(data, what);
  return {
    course: field(body, 'course', isString, what, '$'),
    hint_levels: field(body, 'hint_levels', isNumber, what, '$'),
    assignments: listField(body, 'assignments', what, '$', (raw, path) => ({
      name: field(raw, 'name', isString, what, path),
      path: field(raw, 'path', isString, what, path),
      mode: field(raw, 'mode', isString, what, path),
      mode_now: field(raw, 'mode_now', isString, what, path),
      deadline: field(raw, 'deadline', isStringOrNull, what, path)
    })),
    help: listField(body, 'help', what, '$', (raw, path) => ({
      student_id: field(raw, 'student_id', isString, what, path),
      assignment: field(raw, 'assignment', isString, what, path),
      help_hints: field(raw, 'help_hints', isNumber, what, path),
      help_max_hint_level: field(raw, 'help_max_hint_level', isNumber, what, path),
      help_cells: field(raw, 'help_cells', isNumber, what, path),
      help_fixes: field(raw, 'help_fixes', isNumber, what, path),
      help_tokens: field(raw, 'help_tokens', isNumber, what, path),
      cells: levels(raw, path)
    }))
  };
}

/** "tutor until 10 Dec, 12:00, then open" — what a student of the assignment gets. */
export function modeText(a: IAssignmentHelp): string {
  if (!a.deadline) {
    return a.mode;
  }
  const at = momentText(new Date(a.deadline));
  return a.mode_now === a.mode ? `${a.mode} until ${at}` : `${a.mode_now} (since ${at})`;
}

/** Each cell's level, most help first: "squares 3/3, why 1/3". */
export function cellsText(row: IHelpRow, max: number): string {
  return Object.entries(row.cells)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([cell, level]) => `${cell} ${level}/${max}`)
    .join(', ');
}

/** The section's body: the modes, then one row per student and assignment. */
export function helpView(report: IHelpReport): HTMLElement {
  const modes = report.assignments.length
    ? h(
        'ul',
        { class: 'aiide-Instructor-helpModes' },
        report.assignments.map(a => h('li', {}, `${a.name} (${a.path}): ${modeText(a)}`))
      )
    : h('p', { class: 'aiide-Instructor-hint' }, 'No assignment has a help mode of its own: the course-wide mode applies.');
  if (!report.help.length) {
    return h('div', {}, modes, h('p', { class: 'aiide-Instructor-empty' }, 'No student has asked for help on an assignment yet.'));
  }
  const head = ['Student', 'Assignment', 'Hints', 'Highest level', 'Cells (level)', 'Fixes', 'Tokens'];
  return h(
    'div',
    {},
    modes,
    h(
      'table',
      { class: 'aiide-Instructor-table aiide-Instructor-help' },
      h('caption', {}, `Help used per assignment (hint levels of ${report.hint_levels})`),
      h('thead', {}, h('tr', {}, head.map(name => h('th', { scope: 'col' }, name)))),
      h(
        'tbody',
        {},
        report.help.map(row =>
          h(
            'tr',
            {},
            [
              row.student_id,
              row.assignment || '(course-wide)',
              String(row.help_hints),
              `${row.help_max_hint_level}/${report.hint_levels}`,
              cellsText(row, report.hint_levels),
              String(row.help_fixes),
              row.help_tokens.toLocaleString()
            ].map(text => h('td', {}, text))
          )
        )
      )
    )
  );
}
