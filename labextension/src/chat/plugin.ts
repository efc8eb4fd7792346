/**
 * Plugin `aiide:chat`: the chat socket (connected for the page's lifetime), the notebook
 * bridge, and the chat sidebar; offers `IAiideChat` to the other plugins.
 */
import {
  ILayoutRestorer,
  type JupyterFrontEnd,
  type JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { URLExt } from '@jupyterlab/coreutils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import type { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStateDB } from '@jupyterlab/statedb';

import { ChatSocket, type ISocketLike } from '../api/chatSocket';
import {
  deleteConversation,
  exportConversation,
  getConversation,
  listConversations,
  renameConversation,
  searchConversations
} from '../api/conversations';
import { describeFailure } from '../api/failure';
import { answerOutsideApproval, listOutsideApprovals } from '../api/outsideApprovals';
import { searchKnowledge } from '../api/knowledge';
import { fetchModels } from '../api/models';
import type { IChatContext, Task } from '../api/protocol';
import { API_PREFIX } from '../api/request';
import { listenForJobs } from '../knowledge/events';
import { openCitation } from '../knowledge/opener';
import { JobTracker } from '../knowledge/progress';
import { NotebookBridge, type INotebookActions } from '../notebook/bridge';
import { chatIcon } from '../ui/icons';
import { ActiveContext, type IMainArea } from './activeContext';
import { codeFields } from './codeField';
import { NotebookCodeActions } from './codeActions';
import { learn } from './learn';
import { MentionSource } from './mentionSource';
import { ModelDirectory } from './modelDirectory';
import { CHAT_PANEL_ID, ChatPanel, type IChatPreferences } from './panel';
import { createChatSanitizer } from './sanitizer';
import { ChatSession } from './session';
import { OpenConversation } from './openConversation';
import { TitleStore } from './titles';
import { IAiideChat } from './tokens';

const PLUGIN_ID = 'aiide:chat';

export const CommandIDs = {
  open: 'aiide:open-chat',
  newChat: 'aiide:new-chat'
};

const DEFAULT_PREFERENCES: IChatPreferences = {
  model: null,
  task: 'agent',
  enterToSend: true,
  saveBeforeAsking: true
};

function readPreferences(settings: ISettingRegistry.ISettings): IChatPreferences {
  const c = settings.composite;
  return {
    model: typeof c.model === 'string' && c.model ? c.model : null,
    task: c.task === 'chat' ? 'chat' : 'agent',
    enterToSend: c.enterToSend !== false,
    saveBeforeAsking: c.saveBeforeAsking !== false
  };
}

function socketUrl(settings: ServerConnection.ISettings): string {
  const url = URLExt.join(settings.wsUrl, API_PREFIX, 'chat/ws');
  return settings.appendToken && settings.token
    ? `${url}?token=${encodeURIComponent(settings.token)}`
    : url;
}

/** Without a notebook tracker there are no notebooks to act on. */
const NO_NOTEBOOKS: INotebookActions = {
  confirm: () => undefined,
  reject: () => undefined,
  undo: () => undefined,
  applyAnyway: () => undefined,
  switchToSandbox: () => Promise.reject(new Error('no notebooks in this page')),
  cells: () => [],
  reveal: () => false,
  codeField: null
};

export const chatPlugin: JupyterFrontEndPlugin<IAiideChat> = {
  id: PLUGIN_ID,
  description: 'The aiide chat sidebar, its connection to the agent, and agent edits in open notebooks.',
  autoStart: true,
  provides: IAiideChat,
  requires: [IRenderMimeRegistry],
  optional: [
    INotebookTracker,
    ISettingRegistry,
    IStateDB,
    ICommandPalette,
    ILayoutRestorer,
    IEditorServices
  ],
  activate: (
    app: JupyterFrontEnd,
    rendermime: IRenderMimeRegistry,
    tracker: INotebookTracker | null,
    registry: ISettingRegistry | null,
    state: IStateDB | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    editors: IEditorServices | null
  ): IAiideChat => {
    const server = app.serviceManager.serverSettings;
    const socket = new ChatSocket({
      url: () => socketUrl(server),
      createSocket: url => new server.WebSocket(url) as unknown as ISocketLike,
      diagnose: async () => {
        try {
          await fetchModels(server);
          return null;
        } catch (error) {
          return describeFailure(error).message;
        }
      }
    });
    const session = new ChatSession(socket, {
      list: () => listConversations(server),
      get: id => getConversation(id, server),
      remove: id => deleteConversation(id, server),
      search: query => searchConversations(query, server),
      rename: (id, title) => renameConversation(id, title, server),
      exportFile: (id, format) => exportConversation(id, format, server)
    }, {
      list: () => listOutsideApprovals(server),
      answer: (id, answer) => answerOutsideApproval(id, answer, server)
    });
    // An outside agent waits: show its card at once if nothing else is on screen (the
    // strip above the conversation offers it otherwise), and say so in the corner.
    session.outsideAsked.connect((_, id) => {
      const shown = session.current;
      const free = shown.id === null && shown.blocks.length === 0;
      if (free) {
        void session.open(id);
      }
      if (!panel.isVisible || (!free && shown.id !== id)) {
        Notification.info('An outside agent waits for your approval in the AI assistant.', {
          autoClose: 10_000,
          actions: [
            {
              label: 'Review',
              callback: () => {
                void session.open(id);
                app.shell.activateById(panel.id);
              }
            }
          ]
        });
      }
    });
    // Connected after the session, so a transcript has each event before the bridge acts.
    const bridge = tracker
      ? new NotebookBridge({
          socket,
          tracker,
          transcript: id => session.transcript(id),
          codeField: editors ? codeFields(editors) : null,
          attention: id => {
            void session.open(id);
            app.shell.activateById(CHAT_PANEL_ID);
          }
        })
      : null;
    const models = new ModelDirectory(server);
    const active = new ActiveContext(tracker, app.shell as unknown as IMainArea);
    let preferences = DEFAULT_PREFERENCES;
    let settings: ISettingRegistry.ISettings | null = null;
    // Indexing progress: this user's jobs from the event bus, and the jobs /learn starts.
    const learning = new JobTracker({
      user: () => app.serviceManager.user.identity?.username ?? null
    });
    listenForJobs(app.serviceManager.events, learning);

    const panel = new ChatPanel({
      session,
      notebooks: bridge ?? NO_NOTEBOOKS,
      rendermime: rendermime.clone({ sanitizer: createChatSanitizer(rendermime.sanitizer) }),
      codeActions: new NotebookCodeActions(tracker),
      active,
      mentions: new MentionSource(app.serviceManager.contents, active, query =>
        searchKnowledge(query, server)
      ),
      titles: new TitleStore(state),
      models,
      preferences: () => preferences,
      setModel: name => {
        preferences = { ...preferences, model: name };
        void settings?.set('model', name ?? '').catch(error =>
          console.warn('aiide: could not save the model choice', error)
        );
      },
      learn: path => learn(path, server, learning),
      leave: () => {
        // The document the user was in (a notebook, a file): the main area's current one.
        const main = app.shell.currentWidget;
        if (main) {
          app.shell.activateById(main.id);
        }
      },
      learning,
      citations: {
        baseUrl: server.baseUrl,
        open: target =>
          void openCitation(app, target).catch(error =>
            console.warn('aiide: could not open the cited file', error)
          )
      }
    });
    panel.title.icon = chatIcon;
    panel.title.caption = 'AI assistant';
    app.shell.add(panel, 'right', { rank: 200 });
    restorer?.add(panel, 'aiide-chat');

    const open = (): void => {
      app.shell.activateById(panel.id);
      panel.focusInput();
    };
    app.commands.addCommand(CommandIDs.open, {
      label: 'Open AI Assistant',
      caption: 'Show the aiide chat',
      icon: chatIcon,
      execute: open
    });
    app.commands.addCommand(CommandIDs.newChat, {
      label: 'New AI Conversation',
      execute: () => {
        session.startNew();
        open();
      }
    });
    palette?.addItem({ command: CommandIDs.open, category: 'AI Assistant' });
    palette?.addItem({ command: CommandIDs.newChat, category: 'AI Assistant' });

    if (registry) {
      void registry.load(PLUGIN_ID).then(
        loaded => {
          settings = loaded;
          preferences = readPreferences(loaded);
          panel.preferencesChanged();
          loaded.changed.connect(() => {
            preferences = readPreferences(loaded);
            panel.preferencesChanged();
          });
        },
        error => console.warn('aiide: could not load the chat settings, using defaults', error)
      );
    }

    window.addEventListener('online', () => socket.reconnectNow());
    socket.connect();
    void models.refresh();
    // The conversation on screen before a reload comes back (restore() lists them too).
    const openConversation = new OpenConversation(session, state);
    void openConversation.restore().catch(error =>
      console.warn('aiide: could not reopen the last conversation', error)
    );

    return {
      socket,
      session,
      models,
      get pickedModel() {
        return preferences.model;
      },
      open,
      ask: async (text: string, task: Task, context: IChatContext) => {
        app.shell.activateById(panel.id);
        await panel.ask(text, task, context);
      },
      fix: async (path: string, cellId: string | null) => {
        app.shell.activateById(panel.id);
        await panel.fix(path, cellId);
      }
    };
  }
};
