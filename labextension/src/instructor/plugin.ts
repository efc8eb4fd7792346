/**
 * Plugin `aiide:instructor-dashboard`: for instructors only. At start it asks who the user
 * is (`auth/me`); with scope `course` it lists the courses they teach (the broker checks
 * again with the hub). Only when that answers with a course are the command, its palette
 * entry and launcher card added: students never see the dashboard, and the server refuses
 * them the instructor API anyway.
 */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';

import { type ICourse, InstructorApi } from './api';
import { taughtCourses } from './detect';
import { dashboardIcon } from './icon';
import type { InstructorPanel } from './panel';

export const OPEN_DASHBOARD = 'aiide:open-instructor-dashboard';

export const instructorPlugin: JupyterFrontEndPlugin<void> = {
  id: 'aiide:instructor-dashboard',
  description: "The instructor dashboard: students' usage, limits, audit, exam mode and budgets.",
  autoStart: true,
  optional: [ICommandPalette, ILauncher],
  activate: (app: JupyterFrontEnd, palette: ICommandPalette | null, launcher: ILauncher | null): void => {
    const settings = app.serviceManager.serverSettings;
    const api = new InstructorApi(settings);
    let panel: Promise<MainAreaWidget<InstructorPanel>> | null = null;

    /** The dashboard (one at a time), in a chunk of its own: only instructors load it. */
    const dashboard = async (courses: ICourse[]): Promise<MainAreaWidget<InstructorPanel>> => {
      const current = panel && (await panel.catch(() => null)); // a failed load: try again
      if (current && !current.isDisposed) {
        return current;
      }
      panel = import('./panel').then(({ InstructorPanel }) => {
        const widget = new MainAreaWidget({ content: new InstructorPanel(api, courses) });
        widget.id = 'aiide-instructor-panel';
        widget.title.label = 'Instructor Dashboard';
        widget.title.icon = dashboardIcon;
        return widget;
      });
      return panel;
    };

    void taughtCourses(settings, api).then(courses => {
      if (!courses.length) {
        return;
      }
      app.commands.addCommand(OPEN_DASHBOARD, {
        label: 'Instructor Dashboard',
        caption: "Students' assistant usage, limits and audit; exam mode and budgets",
        icon: dashboardIcon,
        execute: async () => {
          const widget = await dashboard(courses);
          if (!widget.isAttached) {
            app.shell.add(widget, 'main');
          }
          app.shell.activateById(widget.id);
          await widget.content.refresh();
        }
      });
      palette?.addItem({ command: OPEN_DASHBOARD, category: 'AI Assistant' });
      launcher?.add({ command: OPEN_DASHBOARD, category: 'Other', rank: 50 });
    });
  }
};
