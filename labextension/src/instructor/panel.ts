/**
 * The instructor dashboard: a course's exam-mode switch and budget, usage per student and
 * per day (chart + tables) with each student's budget (their own, set from the table, or
 * the course's), who hit limits, and the audit trail search, each with the broker's CSV
 * export. Every name, message and detail is set as text, never as HTML.
 */
import { Widget } from '@lumino/widgets';

import { describeFailure } from '../api/failure';
import { button, fill, h } from '../ui/dom';
import {
  type AdminKind,
  type IAuditEvent,
  type ICourse,
  type ILimitHit,
  type InstructorApi,
  type IRosterRow,
  type IShare,
  type IStudentDay
} from './api';
import { stackedChart } from './chart';
import { type IHelpReport, helpView } from './help';
import { ModelsForm, NoticeForm, ScheduleForm, rosterTable, sharesList, transcriptView } from './teaching';
import { BudgetForm, ExamForm, StudentBudgetForm } from './forms';
import {
  AUDIT_ACTIONS,
  AUDIT_EXPORT,
  AUDIT_PAGE,
  type IAuditForm,
  WINDOWS,
  auditQuery,
  dayWindow,
  detailText,
  lastId,
  limitWords,
  ownBudget,
  stackedDays,
  studentBudgetText,
  studentTotals,
  timeText,
  windowQuery,
  withOwnBudgets
} from './model';

const TITLE = 'Instructor Dashboard';

/** Saves `blob` as a file through the browser's download (no page navigation). */
function download(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const link = h('a', { href: url, download: name, class: 'aiide-Instructor-download' });
  document.body.append(link);
  link.click();
  link.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function table(caption: string, head: string[], rows: (string | Node)[][], empty: string): HTMLElement {
  if (!rows.length) {
    return h('p', { class: 'aiide-Instructor-empty' }, empty);
  }
  return h(
    'table',
    { class: 'aiide-Instructor-table' },
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, head.map(name => h('th', { scope: 'col' }, name)))),
    h('tbody', {}, rows.map(cells => h('tr', {}, cells.map(c => h('td', {}, c)))))
  );
}

function n(value: number): string {
  return value.toLocaleString();
}

function count(value: number, noun: string): string {
  return `${n(value)} ${noun}${value === 1 ? '' : 's'}`;
}

export class InstructorPanel extends Widget {
  constructor(api: InstructorApi, courses: ICourse[]) {
    super();
    this._api = api;
    this._courses = courses;
    this._current = courses[0]?.course ?? '';
    this.id = 'aiide-instructor';
    this.addClass('aiide-Instructor');
    this.title.label = TITLE;
    this.title.closable = true;
    this._auditForm = { q: '', action: 'course.changed', actor: '', outcome: '', since: '', until: '' };
    fill(
      this.node,
      this._header(),
      this._status,
      h('section', { class: 'aiide-Instructor-section', 'aria-label': 'Course policy' }, this._course),
      h('section', { class: 'aiide-Instructor-section', 'aria-label': 'Class list' }, this._roster),
      h('section', { class: 'aiide-Instructor-section', 'aria-label': 'Shared conversations' }, this._shares),
      h('section', { class: 'aiide-Instructor-section', 'aria-label': 'Help used' }, this._help),
      h(
        'section',
        { class: 'aiide-Instructor-section', 'aria-label': 'Usage' },
        this._usage,
        this._studentBudget.node,
        this._usageMore
      ),
      h('section', { class: 'aiide-Instructor-section', 'aria-label': 'Limits hit' }, this._limits),
      h('section', { class: 'aiide-Instructor-section', 'aria-label': 'Audit trail' }, this._auditPart())
    );
    this._renderCourse();
  }

  /** The course being changed by the switch and the budget form. */
  get course(): ICourse | undefined {
    return this._courses.find(c => c.course === this._current);
  }

  /** Reloads the courses, usage and limits of the window, and the audit search. */
  async refresh(): Promise<void> {
    const loading = this._say('Loading…');
    await Promise.all([this._loadCourses(), this._loadActivity(), this._search(), this._loadClass()]);
    if (this._said === loading) {
      // only if nothing was said meanwhile (a change saved while this loaded is news)
      this._say(`Updated ${new Date().toLocaleTimeString()}.`);
    }
  }

  // -- header ---------------------------------------------------------------------------

  private _header(): HTMLElement {
    const days = h(
      'select',
      {
        class: 'aiide-Instructor-days',
        'aria-label': 'Period',
        onchange: (e: Event) => {
          this._days = Number((e.target as HTMLSelectElement).value);
          void this._loadActivity();
          void this._loadClass();
        }
      },
      WINDOWS.map(d => h('option', { value: d, selected: d === this._days }, `Last ${d} days`))
    );
    return h(
      'header',
      { class: 'aiide-Instructor-header' },
      h('h2', {}, TITLE),
      this._picker,
      days,
      button('Refresh', () => void this.refresh(), { title: 'Reload everything from the broker' })
    );
  }

  /** Shows `text` in the status line; returns its number (see `refresh`). */
  private _say(text: string, alert = false): number {
    this._status.className = alert ? 'aiide-Instructor-status aiide-Instructor-error' : 'aiide-Instructor-status';
    this._status.setAttribute('role', alert ? 'alert' : 'status');
    this._status.textContent = text;
    return ++this._said;
  }

  private _fail(where: string, error: unknown): void {
    this._say(`${where}: ${describeFailure(error).message}`, true);
  }

  // -- course: exam mode and budget -----------------------------------------------------

  private async _loadCourses(): Promise<void> {
    const changes = this._changes;
    let courses: ICourse[];
    try {
      courses = await this._api.courses();
    } catch (error) {
      this._fail('Courses could not be read', error);
      return;
    }
    if (changes !== this._changes) {
      return; // asked before a change was saved: older than what the change answered
    }
    this._courses = courses;
    if (!this.course) {
      this._current = this._courses[0]?.course ?? '';
    }
    this._renderCourse();
  }

  /**
   * Shows the current course. The forms are built once and updated in place (see
   * forms.ts): a refresh never takes away what the instructor is typing. Picking another
   * course puts its values in everywhere (the edits were for the one before).
   */
  private _renderCourse(): void {
    const names = this._courses.map(c => c.course);
    if (names.join('\n') !== [...this._picker.options].map(o => o.value).join('\n')) {
      fill(this._picker, names.map(name => h('option', { value: name }, name)));
    }
    this._picker.value = this._current;
    this._picker.hidden = this._courses.length < 2;
    const course = this.course;
    if (!course) {
      this._shown = '';
      fill(this._course, h('p', {}, 'You teach no course on this hub.'));
      return;
    }
    if (!this._course.contains(this._controls)) {
      fill(this._course, this._heading, this._groups, this._controls);
    }
    this._heading.textContent = `Course ${course.course}`;
    this._groups.textContent = `Students: ${course.groups.join(', ') || 'none'} · models: ${
      course.models.join(', ') || 'any'
    }`;
    const other = course.course !== this._shown;
    this._shown = course.course;
    this._exam.show(course, other);
    this._budget.show(course, other);
    this._studentBudget.show(course, other);
    this._schedule.show(course, other);
    this._notices.show(course, other);
    this._models.show(course, other);
    if (other && this._classOf && this._classOf !== course.course) {
      void this._loadClass(); // the class list and shares belong to the course shown
    }
    this._renderActivity(); // the per-student table shows each student's budget
  }

  private _busy(value: boolean): void {
    this._exam.busy = this._budget.busy = this._studentBudget.busy = value;
    this._schedule.busy = this._notices.busy = this._models.busy = value;
  }

  private async _change(
    form: { show(course: ICourse, other: boolean): void },
    body: Record<string, unknown>,
    done: string
  ): Promise<void> {
    const name = this._current;
    this._busy(true);
    let saved = false;
    try {
      const updated = await this._api.change(name, body);
      this._changes++;
      this._courses = this._courses.map(c => (c.course === name ? updated : c));
      if (updated.warnings?.length) {
        // Saved, but something students use no longer works: said as an alert.
        this._say(`${name}: ${done} (audited). Note: ${updated.warnings.join(' ')}`, true);
      } else {
        this._say(`${name}: ${done} (audited)`);
      }
      saved = true;
    } catch (error) {
      this._fail(`${name} was not changed`, error);
    }
    this._busy(false);
    this._renderCourse();
    const course = this.course;
    if (saved && course?.course === name) {
      form.show(course, true); // what was saved is now the broker's; the other form keeps its edits
    }
    void this._search();
  }

  // -- the class list and shared conversations --------------------------------------

  private async _loadClass(): Promise<void> {
    const course = this._current;
    if (!course) {
      return;
    }
    this._classOf = course;
    let roster: IRosterRow[];
    let shares: IShare[];
    try {
      [roster, shares] = await Promise.all([this._api.roster(course, this._days), this._api.shares(course)]);
    } catch (error) {
      fill(this._roster, h('h3', {}, 'Class list'), h('p', { class: 'aiide-Instructor-error', role: 'alert' }, describeFailure(error).message));
      return;
    }
    if (course !== this._current) {
      return; // another course was picked meanwhile
    }
    fill(
      this._roster,
      h('h3', {}, `Class list (${course})`),
      rosterTable(roster),
      this._exportButton('export', 'Export for the gradebook (CSV)', () => {
        const q = windowQuery(this._days);
        q.set('course', course);
        return q;
      })
    );
    void this._loadHelp(course);
    fill(
      this._shares,
      h('h3', {}, 'Shared conversations'),
      h('p', { class: 'aiide-Instructor-hint' }, 'Conversations students chose to share with you when asking for help.'),
      sharesList(shares, share => void this._read(share)),
      this._reading
    );
  }

  /** Help used per assignment and student, with its CSV for nbgrader's gradebook. */
  private async _loadHelp(course: string): Promise<void> {
    let report: IHelpReport;
    try {
      report = await this._api.help(course);
    } catch (error) {
      fill(this._help, h('h3', {}, 'Help used'), h('p', { class: 'aiide-Instructor-error', role: 'alert' }, describeFailure(error).message));
      return;
    }
    if (course !== this._current) {
      return;
    }
    fill(
      this._help,
      h('h3', {}, `Help used (${course})`),
      helpView(report),
      this._exportButton('help', 'Export help for the gradebook (CSV)', () => new URLSearchParams({ course }))
    );
  }

  private async _read(share: IShare): Promise<void> {
    try {
      const whole = await this._api.share(share.id);
      fill(this._reading, transcriptView(whole, () => fill(this._reading)));
      this._reading.scrollIntoView({ block: 'nearest' });
    } catch (error) {
      this._fail(`The conversation ${share.user} shared could not be read`, error);
      void this._loadClass(); // no longer shared, perhaps
    }
  }

  // -- usage and limits -----------------------------------------------------------------

  private async _loadActivity(): Promise<void> {
    const query = windowQuery(this._days);
    let usage: IStudentDay[];
    let limits: ILimitHit[];
    try {
      [usage, limits] = await Promise.all([this._api.usage(query), this._api.limits(query)]);
    } catch (error) {
      this._activity = null;
      const text = describeFailure(error).message;
      fill(this._usage, h('h3', {}, 'Usage'), h('p', { class: 'aiide-Instructor-error', role: 'alert' }, text));
      fill(this._usageMore);
      fill(this._limits, h('h3', {}, 'Who hit limits'));
      return;
    }
    this._activity = { usage, limits, days: this._days, query };
    this._renderActivity();
  }

  /**
   * Draws the usage and limits last loaded, with the current course's budgets. The tables
   * are redrawn; the student budget form next to them is not (only buttons are in them).
   */
  private _renderActivity(): void {
    if (!this._activity) {
      return;
    }
    const { usage, limits, query } = this._activity;
    const span = this._activity.days;
    const days = dayWindow(span, new Date());
    const course = this.course;
    const totals = withOwnBudgets(studentTotals(usage, limits), course);
    const budgetCells = (user: string): (string | Node)[] =>
      course
        ? [
            studentBudgetText(course, user),
            button(
              ownBudget(course, user) ? 'Change budget' : 'Set budget',
              () => this._studentBudget.edit(user),
              { class: 'aiide-Instructor-setBudget', title: `A budget of ${user}'s own, below` }
            )
          ]
        : [];
    fill(
      this._usage,
      h('h3', {}, `Usage per student, last ${span} days`),
      stackedChart('Tokens per day by student', stackedDays(usage, days)),
      table(
        'Per student',
        [
          'Student',
          'Tokens',
          'Input',
          'Output',
          'Calls',
          'Active days',
          'Limits hit',
          ...(course ? ['Budget', ''] : [])
        ],
        totals.map(t => [
          t.user,
          n(t.total_tokens),
          n(t.input_tokens),
          n(t.output_tokens),
          n(t.calls),
          n(t.active_days),
          t.limit_hits ? `${n(t.limit_hits)} (${t.limit_codes.map(limitWords).join(', ')})` : '—',
          ...budgetCells(t.user)
        ]),
        'No student used the assistant in this period.'
      )
    );
    fill(
      this._usageMore,
      usage.length
        ? h(
            'details',
            { class: 'aiide-Instructor-perDay' },
            h('summary', {}, `Per student and day (${count(usage.length, 'row')})`),
            table(
              'Per student and day',
              ['Day', 'Student', 'Tokens', 'Input', 'Output', 'Calls'],
              [...usage]
                .reverse()
                .map(r => [r.day, r.user, n(r.total_tokens), n(r.input_tokens), n(r.output_tokens), n(r.calls)]),
              ''
            )
          )
        : null,
      this._exportButton('usage', 'Export usage (CSV)', () => query)
    );
    fill(
      this._limits,
      h('h3', {}, 'Who hit limits'),
      table(
        'Refusals per student and day',
        ['Day', 'Student', 'Limit', 'Times'],
        [...limits].reverse().map(r => [r.day, r.user, limitWords(r.code), n(r.count)]),
        'Nobody hit a limit in this period.'
      ),
      this._exportButton('limits', 'Export limits (CSV)', () => query)
    );
  }

  /** A button that downloads the broker's CSV of `kind` for the query of the moment. */
  private _exportButton(kind: AdminKind, label: string, query: () => URLSearchParams): HTMLButtonElement {
    return button(
      label,
      async () => {
        try {
          const file = await this._api.csv(kind, query());
          download(file.blob, file.name);
          this._say(`Downloaded ${file.name}.`);
        } catch (error) {
          this._fail('The export failed', error);
        }
      },
      { class: 'aiide-Instructor-export' }
    );
  }

  // -- audit trail ----------------------------------------------------------------------

  private _auditPart(): HTMLElement {
    const form = this._auditForm;
    const input = (key: keyof IAuditForm, label: string, attrs: Record<string, string> = {}): HTMLElement => {
      const field = h('input', { type: 'text', name: key, ...attrs });
      field.value = form[key];
      field.addEventListener('input', () => (form[key] = field.value));
      return h('label', {}, `${label} `, field);
    };
    const actions = h(
      'datalist',
      { id: 'aiide-instructor-actions' },
      AUDIT_ACTIONS.map(a => h('option', { value: a }))
    );
    const search = h(
      'form',
      {
        class: 'aiide-Instructor-search',
        role: 'search',
        onsubmit: (e: Event) => {
          e.preventDefault();
          void this._search();
        }
      },
      input('q', 'Text', { placeholder: 'anywhere in the event', 'aria-label': 'Search text' }),
      input('action', 'Action', { list: 'aiide-instructor-actions' }),
      actions,
      input('actor', 'Who'),
      input('outcome', 'Outcome'),
      input('since', 'From', { type: 'date' }),
      input('until', 'Before', { type: 'date' }),
      h('button', { type: 'submit', class: 'jp-Button aiide-Button jp-mod-accept' }, 'Search'),
      this._exportButton('audit', 'Export (CSV)', () => auditQuery(this._auditForm, 0, AUDIT_EXPORT))
    );
    return h('div', {}, h('h3', {}, 'Audit trail'), search, this._audit);
  }

  private async _search(more = false): Promise<void> {
    const before = more ? lastId(this._events) : 0; // newest first: older than the last shown
    let page: IAuditEvent[];
    try {
      page = await this._api.audit(auditQuery(this._auditForm, before));
    } catch (error) {
      fill(this._audit, h('p', { class: 'aiide-Instructor-error', role: 'alert' }, describeFailure(error).message));
      return;
    }
    this._events = more ? [...this._events, ...page] : page;
    fill(
      this._audit,
      table(
        count(this._events.length, 'event'),
        ['Time (UTC)', 'Who', 'Action', 'Target', 'Outcome', 'Detail'],
        this._events.map(e => [
          timeText(e.time),
          e.actor ?? '—',
          e.action,
          e.target,
          e.outcome,
          h('code', {}, detailText(e.detail))
        ]),
        'No event matches.'
      ),
      page.length === AUDIT_PAGE ? button('Load more', () => void this._search(true)) : null
    );
  }

  private readonly _api: InstructorApi;
  private _courses: ICourse[];
  private _current: string;
  private _days: number = WINDOWS[0];
  private _events: IAuditEvent[] = [];
  private readonly _auditForm: IAuditForm;
  private _said = 0;
  /** Changes saved so far (see `_loadCourses`). */
  private _changes = 0;
  private readonly _status = h('p', { class: 'aiide-Instructor-status', role: 'status' });
  private readonly _picker = h('select', {
    class: 'aiide-Instructor-picker',
    'aria-label': 'Course',
    onchange: (e: Event) => {
      this._current = (e.target as HTMLSelectElement).value;
      this._renderCourse();
    }
  });
  private readonly _course = h('div', { class: 'aiide-Instructor-course' });
  private readonly _heading = h('h3');
  private readonly _groups = h('p', { class: 'aiide-Instructor-groups' });
  private readonly _exam = new ExamForm((body, done) => void this._change(this._exam, body, done));
  private readonly _budget = new BudgetForm(
    (body, done) => void this._change(this._budget, body, done),
    error => this._say(error, true)
  );
  private readonly _studentBudget = new StudentBudgetForm(
    (body, done) => void this._change(this._studentBudget, body, done),
    error => this._say(error, true)
  );
  private readonly _schedule = new ScheduleForm(
    (body, done) => void this._change(this._schedule, body, done),
    error => this._say(error, true)
  );
  private readonly _notices = new NoticeForm((body, done) => void this._change(this._notices, body, done));
  private readonly _models = new ModelsForm(
    (body, done) => void this._change(this._models, body, done),
    error => this._say(error, true)
  );
  private readonly _controls = h(
    'div',
    { class: 'aiide-Instructor-controls' },
    this._exam.node,
    this._budget.node,
    this._schedule.node,
    this._notices.node,
    this._models.node
  );
  private readonly _roster = h('div', { class: 'aiide-Instructor-class' });
  private readonly _help = h('div', { class: 'aiide-Instructor-helpUsed' });
  private readonly _shares = h('div', { class: 'aiide-Instructor-shared' });
  private readonly _reading = h('div', { class: 'aiide-Instructor-reading' });
  /** The course whose class list is shown. */
  private _classOf = '';
  /** The course the forms show (their edits belong to it). */
  private _shown = '';
  private readonly _usage = h('div', { class: 'aiide-Instructor-usage' });
  private readonly _usageMore = h('div', { class: 'aiide-Instructor-usageMore' });
  /** The usage and limits last loaded (drawn again when a budget changes). */
  private _activity: {
    usage: IStudentDay[];
    limits: ILimitHit[];
    days: number;
    query: URLSearchParams;
  } | null = null;
  private readonly _limits = h('div', { class: 'aiide-Instructor-limits' });
  private readonly _audit = h('div', { class: 'aiide-Instructor-audit' });
}
