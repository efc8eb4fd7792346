/**
 * The instructor dashboard as a whole, in a DOM: a refresh landing while the instructor
 * types keeps the fields they are editing (value and focus) and updates everything else.
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
      const body = (await request.json()) as { budget?: Record<string, number | null> };
      this.patches.push(body);
      const budget = Object.entries({ ...this.course.budget, ...body.budget }).filter(([, v]) => v !== null);
      this.course = { ...this.course, budget: Object.fromEntries(budget) };
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
        return json({ usage: [] });
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
