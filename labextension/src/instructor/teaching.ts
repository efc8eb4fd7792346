/**
 * The dashboard's teaching tools: a scheduled exam (start and end, in the instructor's
 * time zone; the broker turns exam mode on exactly within it), the announcement and rules
 * students see at the top of their chat, the class's models (one switch for the whole
 * class; the broker refuses a model it cannot serve and says why), the class list with
 * today's use against each budget (students who have not started included), and the
 * conversations students share when they ask for help, read-only.
 * Like forms.ts, a refresh never overwrites a field being edited; all text is set as text.
 */
import { button, h } from '../ui/dom';
import { momentText } from '../ui/moment';
import type { ICourse, IRosterRow, IShare } from './api';
import type { Submit } from './forms';

type Editable = HTMLInputElement | HTMLTextAreaElement;

/** Fields typed into (or focused) since the broker's value was last put in. */
class Dirty {
  watch<T extends Editable>(field: T): T {
    field.addEventListener('input', () => this._dirty.add(field));
    return field;
  }

  set(field: Editable, value: string, force: boolean): void {
    if (force || (!this._dirty.has(field) && field.ownerDocument.activeElement !== field)) {
      field.value = value;
      this._dirty.delete(field);
    }
  }

  private readonly _dirty = new Set<Editable>();
}

/** `datetime-local` value (the browser's zone) of an ISO time, and back to ISO (UTC). */
export function localInput(iso: string | null): string {
  if (!iso) {
    return '';
  }
  const d = new Date(iso);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function isoOf(local: string): string | null {
  if (!local) {
    return null;
  }
  const d = new Date(local); // a datetime-local value is read in the browser's zone
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

export function whenText(iso: string): string {
  return momentText(new Date(iso));
}

/** What the schedule line says about a course's exam window now. */
export function scheduleText(course: ICourse, now: Date): string {
  const { start, end } = course.exam; // a broker from before schedules sends neither
  if (!start || !end) {
    return 'No exam scheduled.';
  }
  const t = now.getTime();
  const state =
    t < Date.parse(start) ? 'scheduled' : t < Date.parse(end) ? 'on now (scheduled)' : 'over';
  return `Exam ${state}: ${whenText(start)} – ${whenText(end)}.`;
}

/** A fieldset of the course controls; its buttons wait while a change is saved. */
abstract class CourseForm {
  node: HTMLElement = document.createElement('fieldset');

  set busy(value: boolean) {
    for (const b of this.node.querySelectorAll('button')) {
      b.disabled = value;
    }
  }

  abstract show(course: ICourse, other: boolean): void;
}

export class ScheduleForm extends CourseForm {
  constructor(submit: Submit, refuse: (message: string) => void) {
    super();
    this._send = submit;
    const save = (): void => {
      const start = isoOf(this._start.value);
      const end = isoOf(this._end.value);
      if (!start || !end) {
        refuse('Give the exam a start and an end.');
        return;
      }
      if (Date.parse(end) <= Date.parse(start)) {
        refuse("The exam's end must be after its start.");
        return;
      }
      submit({ exam: { start, end } }, `exam scheduled from ${whenText(start)} to ${whenText(end)}`);
    };
    this.node = h(
      'fieldset',
      { class: 'aiide-Instructor-schedule' },
      h('legend', {}, 'Scheduled exam'),
      h('p', { class: 'aiide-Instructor-hint' }, 'Exam mode turns on at the start and off at the end, by itself.'),
      this._line,
      h('label', {}, 'Starts ', this._start),
      h('label', {}, 'Ends ', this._end),
      button('Schedule exam', save, { class: 'aiide-Instructor-scheduleSave' }),
      this._clear
    );
  }


  show(course: ICourse, other: boolean): void {
    this._line.textContent = scheduleText(course, new Date());
    this._dirty.set(this._start, localInput(course.exam.start ?? null), other);
    this._dirty.set(this._end, localInput(course.exam.end ?? null), other);
    this._clear.hidden = !course.exam.start;
  }

  private readonly _dirty = new Dirty();
  private readonly _line = h('p', { class: 'aiide-Instructor-scheduleState', role: 'status' });
  private readonly _start = this._dirty.watch(h('input', { type: 'datetime-local', name: 'exam-start' }));
  private readonly _end = this._dirty.watch(h('input', { type: 'datetime-local', name: 'exam-end' }));
  private _send: Submit = () => undefined;
  private readonly _clear = button(
    'Clear schedule',
    () => this._send({ exam: { start: null, end: null } }, 'exam schedule cleared'),
    { class: 'aiide-Instructor-scheduleClear' }
  );
}

export class NoticeForm extends CourseForm {
  constructor(submit: Submit) {
    super();
    this.node = h(
      'fieldset',
      { class: 'aiide-Instructor-notices' },
      h('legend', {}, 'Told to students'),
      h('p', { class: 'aiide-Instructor-hint' }, 'Shown at the top of every student\u2019s chat, before anything is refused.'),
      h('label', {}, 'Announcement ', this._announcement),
      h('label', {}, 'Course rules ', this._rules),
      button(
        'Tell students',
        () =>
          submit(
            { announcement: this._announcement.value.trim() || null, rules: this._rules.value.trim() || null },
            'announcement and rules saved'
          ),
        { class: 'aiide-Instructor-noticesSave' }
      )
    );
  }


  show(course: ICourse, other: boolean): void {
    this._dirty.set(this._announcement, course.announcement ?? '', other);
    this._dirty.set(this._rules, course.rules ?? '', other);
  }

  private readonly _dirty = new Dirty();
  private readonly _announcement = this._dirty.watch(
    h('textarea', { name: 'announcement', rows: 2, maxlength: 2000 }) as HTMLTextAreaElement
  );
  private readonly _rules = this._dirty.watch(
    h('textarea', { name: 'rules', rows: 3, maxlength: 2000 }) as HTMLTextAreaElement
  );
}

/** The class's models, one comma-separated list (the broker checks it can serve each). */
export function modelList(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).filter(Boolean))];
}

export class ModelsForm extends CourseForm {
  constructor(submit: Submit, refuse: (message: string) => void) {
    super();
    this.node = h(
      'fieldset',
      { class: 'aiide-Instructor-models' },
      h('legend', {}, 'Models for the class'),
      h('label', {}, 'Model ids ', this._field),
      button(
        'Switch the class',
        () => {
          const models = modelList(this._field.value);
          if (!models.length) {
            refuse('Name at least one model (an empty list would allow every model).');
            return;
          }
          submit({ models }, `the class now uses ${models.join(', ')}`);
        },
        { class: 'aiide-Instructor-modelsSave' }
      )
    );
  }


  show(course: ICourse, other: boolean): void {
    this._dirty.set(this._field, course.models.join(', '), other);
  }

  private readonly _dirty = new Dirty();
  private readonly _field = this._dirty.watch(
    h('input', { type: 'text', name: 'models', placeholder: 'claude-haiku-4-5, gpt-4o-mini', size: 40 })
  );
}

function n(value: number | null): string {
  return value === null ? 'no limit' : value.toLocaleString();
}

/** The class list: every student, today's use against their daily budget. */
export function rosterTable(rows: IRosterRow[]): HTMLElement {
  if (!rows.length) {
    return h('p', { class: 'aiide-Instructor-empty' }, 'No student is in this course yet.');
  }
  const started = rows.filter(r => r.started).length;
  return h(
    'table',
    { class: 'aiide-Instructor-table aiide-Instructor-roster' },
    h('caption', {}, `${rows.length} students, ${started} started, ${rows.length - started} not started`),
    h(
      'thead',
      {},
      h('tr', {}, ['Student', 'Started', 'Used today / budget', 'This week / budget', 'Last active', 'Calls'].map(t => h('th', { scope: 'col' }, t)))
    ),
    h(
      'tbody',
      {},
      rows.map(r =>
        h(
          'tr',
          { 'data-user': r.user, class: r.started ? '' : 'aiide-Instructor-notStarted' },
          h('td', {}, r.user),
          h('td', {}, r.started ? 'yes' : 'not started'),
          h('td', {}, `${r.used_today.toLocaleString()} / ${n(r.daily_budget)}${r.own_budget ? ' (own)' : ''}`),
          h('td', {}, `${r.used_this_week.toLocaleString()} / ${n(r.weekly_budget)}`),
          h('td', {}, r.last_active ?? '—'),
          h('td', {}, r.calls.toLocaleString())
        )
      )
    )
  );
}

/** The shared conversations, each with a button that opens it read-only. */
export function sharesList(shares: IShare[], open: (share: IShare) => void): HTMLElement {
  if (!shares.length) {
    return h('p', { class: 'aiide-Instructor-empty' }, 'No student shares a conversation with you.');
  }
  return h(
    'ul',
    { class: 'aiide-Instructor-shares' },
    shares.map(s =>
      h(
        'li',
        { 'data-share': s.id },
        h('strong', {}, s.user),
        ` · ${s.title} · shared ${whenText(s.shared_at)}`,
        s.note ? h('q', { class: 'aiide-Instructor-shareNote' }, s.note) : null,
        button('Read', () => open(s), { class: 'aiide-Instructor-shareRead' })
      )
    )
  );
}

/** One shared conversation as the student sent it: text only, nothing to edit or run. */
export function transcriptView(share: IShare, close: () => void): HTMLElement {
  return h(
    'article',
    { class: 'aiide-Instructor-transcript', 'aria-label': `Conversation shared by ${share.user}` },
    h('h4', {}, `${share.user}: ${share.title}`),
    h('p', { class: 'aiide-Instructor-hint' }, `Shared ${whenText(share.shared_at)}; read-only. Your reading is audited.`),
    h('pre', { class: 'aiide-Instructor-transcriptText' }, share.transcript ?? ''),
    button('Close', close)
  );
}
