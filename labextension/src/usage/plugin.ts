/**
 * Plugin `aiide:assistant-status`: a status-bar item with the chat connection, the
 * model, and the quota left; a click opens the usage panel.
 */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget } from '@jupyterlab/apputils';
import { IStatusBar } from '@jupyterlab/statusbar';

import { fetchUsage, type IQuota } from '../api/usage';
import { IAiideChat } from '../chat/tokens';
import { NoticeBoard } from '../status/noticeBoard';
import { StatusItem } from '../status/widget';
import { chatIcon } from '../ui/icons';
import { describeAssistant } from './describe';
import { UsagePanel } from './panel';

const ITEM_ID = 'aiide-assistant-status';
const REFRESH_MS = 60_000;
const OPEN_USAGE = 'aiide:open-usage';

export const assistantStatusPlugin: JupyterFrontEndPlugin<void> = {
  id: 'aiide:assistant-status',
  description: 'Shows the assistant connection, model and quota in the status bar; opens the usage panel.',
  autoStart: true,
  requires: [IAiideChat],
  optional: [IStatusBar, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    chat: IAiideChat,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null
  ): void => {
    const server = app.serviceManager.serverSettings;
    let quotas: IQuota[] | null = null;
    let usage: MainAreaWidget<UsagePanel> | null = null;

    app.commands.addCommand(OPEN_USAGE, {
      label: 'Show AI Usage',
      icon: chatIcon,
      execute: () => {
        if (!usage || usage.isDisposed) {
          usage = new MainAreaWidget({ content: new UsagePanel(server) });
          usage.id = 'aiide-usage-panel';
          usage.title.label = 'AI Usage';
          usage.title.icon = chatIcon;
        }
        if (!usage.isAttached) {
          app.shell.add(usage, 'main');
        }
        app.shell.activateById(usage.id);
        void usage.content.refresh();
      }
    });
    palette?.addItem({ command: OPEN_USAGE, category: 'AI Assistant' });

    const item = new StatusItem(() => void app.commands.execute(OPEN_USAGE), ITEM_ID);
    // Budget warnings (80 %, 95 %, used up) stay on screen until they no longer apply.
    const notices = new NoticeBoard();
    const render = (): void => {
      const view = describeAssistant({
        connection: chat.socket.status,
        model: chat.pickedModel ?? chat.session.current.lastModel,
        quotas,
        noModel: chat.models.noModel
      });
      item.render(view);
      notices.sync(view.notices);
    };
    const loadQuotas = async (): Promise<void> => {
      try {
        quotas = (await fetchUsage(server, 'model')).quotas;
      } catch {
        quotas = null; // no metering here, or not allowed: show no quota
      }
      render();
    };

    statusBar?.registerStatusItem(ITEM_ID, { item, align: 'left', rank: 60 });
    chat.socket.statusChanged.connect(render);
    chat.models.changed.connect(render);
    chat.session.currentChanged.connect(render);
    chat.socket.events.connect((_, { event, replay }) => {
      if (event.type === 'run_started') {
        render();
      } else if (event.type === 'run_finished' && !replay) {
        void loadQuotas();
      }
    });
    render();
    void loadQuotas();
    window.setInterval(() => void loadQuotas(), REFRESH_MS);
  }
};
