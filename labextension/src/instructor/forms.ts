/**
 * The dashboard's course forms: exam mode, the token budget, and one student's own
 * budget. Each is built once
 * and then only updated: a refresh (or another instructor's change) shows the broker's
 * values in the fields the instructor is not editing, and never touches one they typed
 * into or have the focus in. Replacing the elements instead would drop what is being
 * typed, and the focus with it, whenever a refresh lands.
 */
import { button, fill, h } from '../ui/dom';
import { BUDGET_KINDS, type Budget, type BudgetKind, FEATURES, type Feature, type ICourse } from './api';
import {
  type BudgetInput,
  budgetChange,
  budgetLabel,
  examChange,
  examSummary,
  featureWords,
  ownBudget,
  studentBudgetChange,
  studentBudgetLabel,
  studentBudgetState
} from './model';

/** What a form asks the panel to send: the change, and what to say once it is saved. */
export type Submit = (body: Record<string, unknown>, done: string) => void;
export type Refuse = (message: string) => void;

type Field = HTMLInputElement;

/**
 * The fields of one form the user is editing: changed since the broker's value was last
 * put in, or focused right now (about to type).
 */
class Edits {
  watch(field: Field): void {
    const mark = (): void => void this._dirty.add(field);
    field.addEventListener('input', mark);
    field.addEventListener('change', mark);
  }

  editing(field: Field): boolean {
    return this._dirty.has(field) || field.ownerDocument.activeElement === field;
  }

  /** The broker's value goes in again everywhere (after a save, or another course). */
  forget(): void {
    this._dirty.clear();
  }

  private readonly _dirty = new Set<Field>();
}

/** One budget field a kind (empty is no limit), each watched by `edits`. */
type BudgetField = { kind: BudgetKind; input: Field };

function budgetFields(edits: Edits, name: (kind: BudgetKind) => string): BudgetField[] {
  return BUDGET_KINDS.map(kind => {
    const input = h('input', {
      type: 'text',
      inputmode: 'numeric',
      name: name(kind),
      class: 'aiide-Instructor-budgetInput',
      placeholder: 'no limit'
    });
    edits.watch(input);
    return { kind, input };
  });
}

/** What the budget fields hold, by kind, as typed. */
function budgetValues(fields: BudgetField[]): BudgetInput {
  return Object.fromEntries(fields.map(i => [i.kind, i.input.value]));
}

export class ExamForm {
  constructor(submit: Submit) {
    this._features = FEATURES.map(feature => {
      const box = h('input', { type: 'checkbox', name: feature });
      this._edits.watch(box);
      return { feature, box };
    });
    this._choices = h(
      'div',
      { class: 'aiide-Instructor-features' },
      'Turn off: ',
      this._features.map(({ feature, box }) =>
        h('label', { class: 'aiide-Instructor-feature' }, box, ` ${featureWords(feature)}`)
      )
    );
    this._message = h('input', {
      type: 'text',
      class: 'aiide-Instructor-message',
      'aria-label': 'Message students see',
      placeholder: 'Message students see, e.g. "Midterm until 12:00"',
      maxlength: 500
    });
    this._edits.watch(this._message);
    this._switch = h('button', {
      type: 'button',
      role: 'switch',
      onclick: () => {
        const course = this._course;
        if (!course) {
          return;
        }
        if (course.exam.enabled) {
          submit(examChange(false, course.exam.disable, ''), 'Exam mode turned off.');
          return;
        }
        const disable: Feature[] = this._features.filter(f => f.box.checked).map(f => f.feature);
        submit(examChange(true, disable, this._message.value), 'Exam mode turned on.');
      }
    });
    // While exam mode is on, what it turns off and its message change in place: it
    // stays on (turning it off to change them left students with everything meanwhile).
    this._save = button(
      'Save exam settings',
      () => {
        const disable: Feature[] = this._features.filter(f => f.box.checked).map(f => f.feature);
        const text = this._message.value.trim();
        const exam: Record<string, unknown> = { disable };
        if (text) {
          exam.message = text.slice(0, 500);
        }
        submit({ exam }, 'Exam settings changed; exam mode stays on.');
      },
      { kind: 'accept', class: 'aiide-Instructor-examSave' }
    );
    this.node = h(
      'fieldset',
      { class: 'aiide-Instructor-exam' },
      h('legend', {}, 'Exam mode'),
      this._state,
      this._seen,
      this._choices,
      this._message,
      this._save,
      this._switch
    );
  }

  readonly node: HTMLFieldSetElement;

  /** Shows `course`; with `fresh` (saved, or another course) the user's edits go too. */
  show(course: ICourse, fresh = false): void {
    if (fresh) {
      this._edits.forget();
    }
    this._course = course;
    const on = course.exam.enabled;
    this.node.dataset.exam = on ? 'on' : 'off';
    this._state.textContent = examSummary(course);
    this._seen.hidden = !on;
    this._seen.textContent = on ? `Students see: "${course.exam.message}"` : '';
    // Off: which features to turn off, and the message. On: the same, saved in place.
    this._save.hidden = !on;
    for (const { feature, box } of this._features) {
      if (!this._edits.editing(box)) {
        box.checked = course.exam.disable.includes(feature);
      }
    }
    this._message.placeholder = on
      ? 'A new message for students (empty: keep the current one)'
      : 'Message students see, e.g. "Midterm until 12:00"';
    if (!this._edits.editing(this._message)) {
      this._message.value = '';
    }
    this._switch.setAttribute('aria-checked', on ? 'true' : 'false');
    this._switch.className = `jp-Button aiide-Button aiide-Instructor-switch ${on ? 'jp-mod-accept' : 'jp-mod-warn'}`;
    this._switch.textContent = on ? 'Turn exam mode off' : 'Turn exam mode on';
    this._enable();
  }

  /** While a change is being saved nothing can be clicked; what was typed stays. */
  set busy(busy: boolean) {
    this._busy = busy;
    this._enable();
  }

  private _enable(): void {
    this._features.forEach(f => (f.box.disabled = this._busy));
    this._message.disabled = this._busy;
    this._save.disabled = this._busy;
    this._switch.disabled = this._busy;
  }

  private readonly _edits = new Edits();
  private readonly _features: { feature: Feature; box: Field }[];
  private readonly _choices: HTMLDivElement;
  private readonly _message: Field;
  private readonly _switch: HTMLButtonElement;
  private readonly _save: HTMLButtonElement;
  private readonly _state = h('p', { class: 'aiide-Instructor-examState' });
  private readonly _seen = h('p', { class: 'aiide-Instructor-examMessage' });
  private _course: ICourse | null = null;
  private _busy = false;
}

export class BudgetForm {
  constructor(submit: Submit, refuse: Refuse) {
    this._inputs = budgetFields(this._edits, kind => kind);
    this._save = button(
      'Save budget',
      () => {
        const change = budgetChange(budgetValues(this._inputs));
        if ('error' in change) {
          refuse(change.error);
          return;
        }
        submit(change, 'Budget saved.');
      },
      { kind: 'accept' }
    );
    this.node = h('fieldset', { class: 'aiide-Instructor-budget' });
    fill(
      this.node,
      h('legend', {}, 'Token budget'),
      this._inputs.map(({ kind, input }) => h('label', {}, `${budgetLabel(kind)} `, input)),
      this._save
    );
  }

  readonly node: HTMLFieldSetElement;

  /** Shows the course's budget in the fields not being edited (all of them if `fresh`). */
  show(course: ICourse, fresh = false): void {
    if (fresh) {
      this._edits.forget();
    }
    for (const { kind, input } of this._inputs) {
      if (!this._edits.editing(input)) {
        const value = course.budget[kind];
        input.value = value === undefined ? '' : String(value);
      }
    }
  }

  set busy(busy: boolean) {
    this._inputs.forEach(i => (i.input.disabled = busy));
    this._save.disabled = busy;
  }

  private readonly _edits = new Edits();
  private readonly _inputs: BudgetField[];
  private readonly _save: HTMLButtonElement;
}

/**
 * One student's own budget, replacing the course's for them: the per-student table's
 * "Set budget" button picks the student (`edit`), or the instructor types their user
 * name. The fields start from the budget that applies to them now; empty is no limit.
 * "Use the course's budget" takes theirs away. Updated in place like the other forms.
 */
export class StudentBudgetForm {
  constructor(submit: Submit, refuse: Refuse) {
    this._student = h('input', {
      type: 'text',
      name: 'student',
      class: 'aiide-Instructor-studentName',
      'aria-label': 'Student',
      placeholder: 'hub user name',
      maxlength: 255,
      autocomplete: 'off'
    });
    this._edits.watch(this._student);
    this._student.addEventListener('input', () => this._showStudent());
    this._inputs = budgetFields(this._edits, kind => `student_${kind}`);
    this._save = button(
      'Save for student',
      () => {
        this._send(studentBudgetChange(this._student.value, budgetValues(this._inputs)), 'own budget saved.');
      },
      { kind: 'accept', class: 'aiide-Instructor-saveStudent' }
    );
    this._clear = button(
      "Use the course's budget",
      () => this._send(studentBudgetChange(this._student.value, null), "back to the course's budget."),
      { class: 'aiide-Instructor-clearStudent' }
    );
    this._submit = submit;
    this._refuse = refuse;
    this.node = h('fieldset', { class: 'aiide-Instructor-budget aiide-Instructor-studentBudget' });
    fill(
      this.node,
      h('legend', {}, "A student's own budget"),
      h('label', {}, 'Student ', this._student),
      this._inputs.map(({ kind, input }) => h('label', {}, `${studentBudgetLabel(kind)} `, input)),
      this._state,
      this._save,
      this._clear
    );
    this._showStudent();
  }

  readonly node: HTMLFieldSetElement;

  /** The student the form is for (as typed). */
  get student(): string {
    return this._student.value.trim();
  }

  /** Picks `user` (the table's button): their values in every field, ready to type. */
  edit(user: string): void {
    this._edits.forget();
    this._student.value = user;
    this._showStudent();
    this._inputs[0].input.focus();
  }

  /** Shows `course`'s values for the student in the fields not being edited. */
  show(course: ICourse, fresh = false): void {
    if (fresh) {
      this._edits.forget();
    }
    this._course = course;
    this._showStudent();
  }

  set busy(busy: boolean) {
    this._busy = busy;
    this._enable();
  }

  private _send(change: ReturnType<typeof studentBudgetChange>, done: string): void {
    if ('error' in change) {
      this._refuse(change.error);
      return;
    }
    this._submit(change, `${this.student}: ${done}`);
  }

  private _showStudent(): void {
    const course = this._course;
    const user = this.student;
    this._own = course && user ? ownBudget(course, user) : undefined;
    this._state.textContent =
      course && user
        ? studentBudgetState(course, user)
        : 'Pick a student in the table above ("Set budget"), or type their user name.';
    const shown = this._own ?? course?.budget ?? {};
    for (const { kind, input } of this._inputs) {
      if (!this._edits.editing(input)) {
        const value = shown[kind];
        input.value = value === undefined ? '' : String(value);
      }
    }
    this._enable();
  }

  private _enable(): void {
    this._student.disabled = this._busy;
    this._inputs.forEach(i => (i.input.disabled = this._busy));
    this._save.disabled = this._busy;
    this._clear.disabled = this._busy || this._own === undefined;
  }

  private readonly _edits = new Edits();
  private readonly _student: Field;
  private readonly _inputs: BudgetField[];
  private readonly _save: HTMLButtonElement;
  private readonly _clear: HTMLButtonElement;
  private readonly _state = h('p', { class: 'aiide-Instructor-studentState', role: 'status' });
  private readonly _submit: Submit;
  private readonly _refuse: Refuse;
  private _course: ICourse | null = null;
  private _own: Budget | undefined = undefined;
  private _busy = false;
}
