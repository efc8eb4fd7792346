/**
 * Plugin `aiide:course-notice`: for students under a hub. At the top of the chat it shows
 * what their course tells them before anything is refused (the announcement, the rules, a
 * scheduled exam coming up or under way, the limits the course enforces), and a way to
 * ask for help: *Share this conversation with my instructor* (after they confirm, their
 * server sends a copy to the course's broker; *Stop sharing* deletes it). Nothing is
 * shared unless the student presses the button. All text is set as text.
 */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, InputDialog, showDialog } from '@jupyterlab/apputils';
import type { ServerConnection } from '@jupyterlab/services';
import { Panel, Widget } from '@lumino/widgets';

import { describeFailure } from '../api/failure';
import { isObject, isString } from '../api/json';
import { requestAPI } from '../api/request';
import { IAiideChat } from '../chat/tokens';
import { button, fill, h } from '../ui/dom';
import { whenText } from './teaching';

/** A course's notice as the broker states it (hub/notices.py). */
export interface ICourseNotice {
  course: string;
  announcement: string;
  rules: string;
  exam: { on: boolean; start: string | null; end: string | null; off: string[]; message: string } | null;
  limits: string[];
}

export interface IMyShare {
  id: string;
  conversation: string;
  title: string;
}

const CHAT_ID = 'aiide-chat';
const REFRESH_MS = 60_000;

export function parseNotices(data: unknown): ICourseNotice[] {
  if (!isObject(data) || !Array.isArray(data.notices)) {
    return [];
  }
  return data.notices.filter(isObject).map(n => ({
    course: isString(n.course) ? n.course : '',
    announcement: isString(n.announcement) ? n.announcement : '',
    rules: isString(n.rules) ? n.rules : '',
    exam: isObject(n.exam)
      ? {
          on: n.exam.on === true,
          start: isString(n.exam.start) ? n.exam.start : null,
          end: isString(n.exam.end) ? n.exam.end : null,
          off: Array.isArray(n.exam.off) ? n.exam.off.filter(isString) : [],
          message: isString(n.exam.message) ? n.exam.message : ''
        }
      : null,
    limits: Array.isArray(n.limits) ? n.limits.filter(isString) : []
  }));
}

/** The exam line: on now (until when) or coming (from when to when), what is off. */
export function examLine(exam: NonNullable<ICourseNotice['exam']>): string {
  const off = exam.off.length ? ` (${exam.off.join(', ')} off)` : '';
  if (exam.on) {
    return `Exam in progress${exam.end ? ` until ${whenText(exam.end)}` : ''}${off}: ${exam.message}`;
  }
  return `Exam scheduled ${exam.start ? whenText(exam.start) : ''} – ${exam.end ? whenText(exam.end) : ''}${off}.`;
}

export class CourseNotice extends Widget {
  constructor(settings: ServerConnection.ISettings, chat: IAiideChat | null) {
    super();
    this._settings = settings;
    this._chat = chat;
    this.addClass('aiide-CourseNotice');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'Your course');
    this.hide();
  }

  /** Asks the broker (through this server) what the course says; false: no course. */
  async refresh(): Promise<boolean> {
    let policy: unknown;
    let mine: IMyShare[] = [];
    try {
      policy = await requestAPI('course', this._settings);
      const shares = await requestAPI('course-share', this._settings);
      if (isObject(shares) && Array.isArray(shares.shares)) {
        mine = shares.shares.filter(isObject).map(s => ({
          id: String(s.id),
          conversation: String(s.conversation),
          title: String(s.title)
        }));
      }
    } catch {
      return false; // no hub extension, no broker, no course: nothing to show
    }
    const courses = isObject(policy) && Array.isArray(policy.courses) ? policy.courses : [];
    if (!courses.length) {
      this.hide();
      return false;
    }
    this._notices = parseNotices(policy);
    this._mine = mine;
    this.render();
    return true;
  }

  render(): void {
    const current = this._chat?.session.current.id ?? null;
    const shared = this._mine.find(s => s.conversation === current);
    const parts: (HTMLElement | null)[] = this._notices.map(n =>
      h(
        'div',
        { class: 'aiide-CourseNotice-course', 'data-course': n.course },
        h('strong', {}, n.course),
        n.announcement ? h('p', { class: 'aiide-CourseNotice-announcement' }, n.announcement) : null,
        n.rules ? h('p', { class: 'aiide-CourseNotice-rules' }, `Rules: ${n.rules}`) : null,
        n.exam ? h('p', { class: 'aiide-CourseNotice-exam', role: 'status' }, examLine(n.exam)) : null,
        n.limits.length ? h('p', { class: 'aiide-CourseNotice-limits' }, `Limits: ${n.limits.join('; ')}`) : null
      )
    );
    const help = shared
      ? h(
          'p',
          { class: 'aiide-CourseNotice-shared' },
          'Your instructor can read this conversation (as it was when you shared it). ',
          button('Stop sharing', () => void this._unshare(shared), { class: 'aiide-CourseNotice-unshare' })
        )
      : current
        ? button('Share this conversation with my instructor…', () => void this._share(current), {
            class: 'aiide-CourseNotice-share'
          })
        : null;
    fill(this.node, ...parts, help, this._status);
    this.show();
  }

  private async _share(conversation: string): Promise<void> {
    const answer = await InputDialog.getText({
      title: 'Share this conversation with your instructor?',
      label:
        'Your course\u2019s instructors will be able to read this conversation as it is now ' +
        '(not what you write later). You can stop sharing at any time. A note for them (optional):',
      okLabel: 'Share',
      placeholder: 'e.g. stuck on question 3'
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await requestAPI(`course-share/${encodeURIComponent(conversation)}`, this._settings, {
        method: 'POST',
        body: JSON.stringify({ note: answer.value ?? '' })
      });
      this._status.textContent = 'Shared with your instructor.';
    } catch (error) {
      this._status.textContent = `Not shared: ${describeFailure(error).message}`;
    }
    await this.refresh();
  }

  private async _unshare(share: IMyShare): Promise<void> {
    const ok = await showDialog({
      title: 'Stop sharing?',
      body: `Your instructor will no longer be able to read \u201c${share.title}\u201d.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Stop sharing' })]
    });
    if (!ok.button.accept) {
      return;
    }
    try {
      await requestAPI(`course-share/${encodeURIComponent(share.id)}`, this._settings, { method: 'DELETE' });
      this._status.textContent = 'No longer shared.';
    } catch (error) {
      this._status.textContent = `Still shared: ${describeFailure(error).message}`;
    }
    await this.refresh();
  }

  private readonly _settings: ServerConnection.ISettings;
  private readonly _chat: IAiideChat | null;
  private _notices: ICourseNotice[] = [];
  private _mine: IMyShare[] = [];
  private readonly _status = h('p', { class: 'aiide-CourseNotice-status', role: 'status' });
}

/** The chat sidebar, once it is in the shell. */
function chatPanel(app: JupyterFrontEnd): Panel | null {
  for (const area of ['right', 'left'] as const) {
    for (const widget of app.shell.widgets(area)) {
      if (widget.id === CHAT_ID && widget instanceof Panel) {
        return widget;
      }
    }
  }
  return null;
}

export const courseNoticePlugin: JupyterFrontEndPlugin<void> = {
  id: 'aiide:course-notice',
  description: "Students' course notices at the top of the chat, and sharing a conversation with the instructor.",
  autoStart: true,
  optional: [IAiideChat],
  activate: (app: JupyterFrontEnd, chat: IAiideChat | null): void => {
    const notice = new CourseNotice(app.serviceManager.serverSettings, chat);
    void app.restored.then(async () => {
      if (!(await notice.refresh())) {
        return; // not a student in a course here
      }
      const panel = chatPanel(app);
      if (!panel) {
        return;
      }
      panel.insertWidget(2, notice); // below the chat's header and banner
      if (chat) {
        // A new conversation gets its id with its first run: the share button follows.
        let shown = chat.session.current.id;
        let transcript = chat.session.current;
        const follow = (): void => {
          if (chat.session.current.id !== shown) {
            shown = chat.session.current.id;
            notice.render();
          }
        };
        transcript.changed.connect(follow);
        chat.session.currentChanged.connect((_, current) => {
          transcript.changed.disconnect(follow);
          transcript = current;
          transcript.changed.connect(follow);
          follow();
        });
      }
      window.setInterval(() => void notice.refresh(), REFRESH_MS);
    });
  }
};
