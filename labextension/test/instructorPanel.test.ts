/**
 * The instructor dashboard as a whole, in a DOM: a refresh landing while the instructor
 * types keeps the fields they are editing (value and focus) and updates everything else;
 * a student's own budget is set and taken away from the per-student table.
 */
import { document, textBecomes, typeInto, window } from './dom';

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import { ServerConnection } from '@jupyterlab/services';

import { InstructorApi, type ICourse } from '../src/instructor/api';
import { InstructorPanel } from '../src/instructor/panel';

after(() => window.happyDOM.close());

const COURSE: ICourse = {
  course: 'ds101',
  groups: ['students'],
  instructors: ['instructors'],
  models: ['claude-haiku-4-5'],
  budget: { daily_tokens: 100000, weekly_tokens: 400000 },
  student_budgets: {},
  exam: { enabled: false, disable: ['chat', 'agent'], message: 'Exam mode is on.' },
  changes: {}
};

/**
 * The broker behind the single-user server: answers the dashboard's reads, and the course
 * list from `courses` of the moment; `hold()` keeps the next course list back until released.
 */
class Broker {
  course: ICourse = COURSE;
  readonly patches: unknown[] = [];
  /** What `GET course-admin/usage` answers. */
  usage: unknown[] = [];

  /** The next `GET courses` waits; resolves once it was asked, with the release. */
  hold(): Promise<() => void> {
    return new Promise(asked => {
      this._held = asked;
    });
  }

  readonly settings = ServerConnection.makeSettings({
    baseUrl: 'http://lab.test/',
    wsUrl: 'ws://lab.test/',
    fetch: (input: RequestInfo | URL, init?: RequestInit) => this._fetch(input, init),
    Request,
    Headers
  } as Partial<ServerConnection.ISettings>);

  private async _fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    const request = input instanceof Request ? input : new Request(String(input), init);
    const path = new URL(request.url).pathname.replace(/^\/aiide\/api\//, '');
    const json = (body: unknown): Response =>
      new Response(JSON.stringify(body), { status: 200, headers: { 'Content-Type': 'application/json' } });
    if (request.method === 'PATCH' && path === 'course/ds101') {
      const body = (await request.json()) as {
        budget?: Record<string, number | null>;
        student_budgets?: Record<string, Record<string, number> | null>;
      };
      this.patches.push(body);
      const budget = Object.entries({ ...this.course.budget, ...body.budget }).filter(([, v]) => v !== null);
      const students = Object.entries({ ...this.course.student_budgets, ...body.student_budgets }).filter(
        (entry): entry is [string, Record<string, number>] => entry[1] !== null
      );
      this.course = {
        ...this.course,
        budget: Object.fromEntries(budget),
        student_budgets: Object.fromEntries(students)
      };
      return json(this.course);
    }
    switch (path) {
      case 'course-admin/courses': {
        const held = this._held;
        this._held = null;
        if (held) {
          await new Promise<void>(release => held(release));
        }
        return json({ courses: [this.course] });
      }
      case 'course-admin/usage':
        return json({ usage: this.usage });
      case 'course-admin/limits':
        return json({ limits: [] });
      case 'course-admin/audit':
        return json({ events: [] });
    }
    return new Response(JSON.stringify({ code: 'not_found', message: path }), { status: 404 });
  }

  private _held: ((release: () => void) => void) | null = null;
}

function status(panel: InstructorPanel): Element {
  const el = panel.node.querySelector('.aiide-Instructor-status');
  assert.ok(el);
  return el;
}

function saveBudget(panel: InstructorPanel): Promise<void> {
  const saved = textBecomes(status(panel), 'ds101: Budget saved. (audited)');
  const save = [...panel.node.querySelectorAll('button')].find(b => b.textContent === 'Save budget');
  assert.ok(save);
  save.click();
  return saved;
}

function buttonNamed(root: ParentNode, text: string): HTMLButtonElement {
  const found = [...root.querySelectorAll('button')].find(b => b.textContent === text);
  assert.ok(found, `no button ${text}`);
  return found;
}

/** The per-student table's row of `user` (its cells' text). */
function row(panel: InstructorPanel, user: string): HTMLTableRowElement {
  const rows = [...panel.node.querySelectorAll<HTMLTableRowElement>('.aiide-Instructor-usage tbody tr')];
  const found = rows.find(r => r.cells[0]?.textContent === user);
  assert.ok(found, `no row for ${user}`);
  return found;
}

function field(panel: InstructorPanel, name: string): HTMLInputElement {
  const input = panel.node.querySelector<HTMLInputElement>(`input[name=${name}]`);
  assert.ok(input, `no field ${name}`);
  return input;
}

describe('instructor dashboard refresh', () => {
  test('a refresh keeps the budget being typed (value and focus) and updates the rest', async () => {
    const broker = new Broker();
    const panel = new InstructorPanel(new InstructorApi(broker.settings), [COURSE]);
    document.body.append(panel.node);
    await panel.refresh();
    const daily = field(panel, 'daily_tokens');
    assert.equal(daily.value, '100000');

    // Another instructor turns exam mode on and changes the weekly budget meanwhile.
    broker.course = {
      ...COURSE,
      budget: { daily_tokens: 100000, weekly_tokens: 500000 },
      exam: { ...COURSE.exam, enabled: true }
    };
    const asked = broker.hold();
    const refreshing = panel.refresh();
    const release = await asked; // the refresh is under way: the instructor types now
    typeInto(daily, '50000');
    release();
    await refreshing;

    assert.equal(field(panel, 'daily_tokens'), daily, 'the field was replaced');
    assert.equal(daily.value, '50000');
    assert.equal(document.activeElement, daily as unknown);
    // The field nobody edits shows the broker's value, and the exam state is the new one.
    assert.equal(field(panel, 'weekly_tokens').value, '500000');
    const exam = panel.node.querySelector('.aiide-Instructor-exam');
    assert.equal(exam?.getAttribute('data-exam'), 'on');
    assert.equal(panel.node.querySelector('[role=switch]')?.textContent, 'Turn exam mode off');
    assert.match(status(panel).textContent ?? '', /^Updated /);

    // What was kept is what is saved (with the weekly budget as it is now).
    await saveBudget(panel);
    assert.deepEqual(broker.patches, [{ budget: { daily_tokens: 50000, weekly_tokens: 500000 } }]);
    assert.equal(daily.value, '50000');
  });

  test("after a save the broker's values show again in fields nobody edits", async () => {
    const broker = new Broker();
    const panel = new InstructorPanel(new InstructorApi(broker.settings), [COURSE]);
    document.body.append(panel.node);
    await panel.refresh();
    const weekly = field(panel, 'weekly_tokens');
    typeInto(weekly, '');
    weekly.blur();
    await saveBudget(panel);
    assert.deepEqual(broker.patches, [{ budget: { daily_tokens: 100000, weekly_tokens: null } }]);
    // Another instructor sets a weekly budget: the next refresh shows it (no edit is pending).
    broker.course = { ...broker.course, budget: { ...broker.course.budget, weekly_tokens: 7000 } };
    await panel.refresh();
    assert.equal(weekly.value, '7000');
  });
});

const DAY = new Date().toISOString().slice(0, 10);

describe("a student's own budget", () => {
  test('set from the per-student table, kept through a refresh while typed, then taken away', async () => {
    const broker = new Broker();
    broker.usage = [
      { day: DAY, user: 'bob', input_tokens: 10, output_tokens: 20, total_tokens: 30, calls: 1 }
    ];
    const panel = new InstructorPanel(new InstructorApi(broker.settings), [COURSE]);
    document.body.append(panel.node);
    await panel.refresh();
    const bob = row(panel, 'bob');
    assert.match(bob.textContent ?? '', /course's: 100,000 tokens a day, 400,000 tokens a week/);
    buttonNamed(bob, 'Set budget').click();

    // The form is for bob, starting from the budget he has now; the cursor is in it.
    const student = field(panel, 'student');
    const daily = field(panel, 'student_daily_tokens');
    assert.equal(student.value, 'bob');
    assert.equal(daily.value, '100000');
    assert.equal(field(panel, 'student_weekly_tokens').value, '400000');
    assert.equal(document.activeElement, daily as unknown);
    const clear = buttonNamed(panel.node, "Use the course's budget");
    assert.equal(clear.disabled, true, 'bob has no budget of his own to take away');

    // A refresh lands while the instructor types: the field, its value and focus stay.
    const asked = broker.hold();
    const refreshing = panel.refresh();
    const release = await asked;
    typeInto(daily, '500000');
    release();
    await refreshing;
    assert.equal(field(panel, 'student_daily_tokens'), daily, 'the field was replaced');
    assert.equal(daily.value, '500000');
    assert.equal(document.activeElement, daily as unknown);

    const weekly = field(panel, 'student_weekly_tokens');
    typeInto(weekly, '');
    const saved = textBecomes(status(panel), 'ds101: bob: own budget saved. (audited)');
    buttonNamed(panel.node, 'Save for student').click();
    await saved;
    assert.deepEqual(broker.patches, [{ student_budgets: { bob: { daily_tokens: 500000 } } }]);
    assert.match(row(panel, 'bob').textContent ?? '', /own: 500,000 tokens a day, no weekly limit/);
    assert.ok(buttonNamed(row(panel, 'bob'), 'Change budget'));
    assert.equal(clear.disabled, false);
    assert.match(panel.node.querySelector('.aiide-Instructor-studentState')?.textContent ?? '', /bob has a budget of their own/);

    // Back to the course's budget.
    const cleared = textBecomes(status(panel), "ds101: bob: back to the course's budget. (audited)");
    clear.click();
    await cleared;
    assert.deepEqual(broker.patches[1], { student_budgets: { bob: null } });
    assert.match(row(panel, 'bob').textContent ?? '', /course's: 100,000 tokens a day/);
    assert.equal(daily.value, '100000', "the form shows the course's budget again");
    assert.equal(clear.disabled, true);
    panel.dispose();
  });

  test('a student with a budget of their own is listed even without usage; bad input is not sent', async () => {
    const broker = new Broker();
    broker.course = { ...COURSE, student_budgets: { carol: { weekly_tokens: 5 } } };
    const panel = new InstructorPanel(new InstructorApi(broker.settings), [broker.course]);
    document.body.append(panel.node);
    await panel.refresh();
    assert.match(row(panel, 'carol').textContent ?? '', /own: no daily limit, 5 tokens a week/);
    buttonNamed(row(panel, 'carol'), 'Change budget').click();
    assert.equal(field(panel, 'student_daily_tokens').value, '');
    assert.equal(field(panel, 'student_weekly_tokens').value, '5');

    typeInto(field(panel, 'student_daily_tokens'), '-3');
    const refused = textBecomes(
      status(panel),
      'Tokens per day: give a whole number of tokens, or leave it empty for no limit.'
    );
    buttonNamed(panel.node, 'Save for student').click();
    await refused;
    typeInto(field(panel, 'student_daily_tokens'), '10');
    typeInto(field(panel, 'student'), 'not a name');
    const named = textBecomes(
      status(panel),
      "Student: give the student's hub user name (no spaces, at most 255 characters)."
    );
    buttonNamed(panel.node, 'Save for student').click();
    await named;
    assert.deepEqual(broker.patches, []);
    panel.dispose();
  });
});
