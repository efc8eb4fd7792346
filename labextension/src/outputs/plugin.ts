/**
 * Output isolation: outputs of sandboxed kernels cannot script the lab (see `policy.ts`),
 * and model text (`%ai`) renders through the model-text sanitizer in every notebook.
 */
import type {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import type { ISessionContext } from '@jupyterlab/apputils';
import type { NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import type { KernelSpec } from '@jupyterlab/services';
import { DisposableDelegate, type IDisposable } from '@lumino/disposable';

import { guardRendermime } from './guard';
import { modelTextRendererFactory, MODEL_TEXT_RANK } from './modelText';
import { isSandboxedKernel } from './policy';

/**
 * Whether `panel`'s outputs come from a sandboxed kernel: its session's kernel, the
 * kernel it is starting, or (before a session exists: outputs saved in the file) the
 * kernelspec in its metadata. Any of them sandboxed is enough.
 */
export function panelIsSandboxed(
  panel: NotebookPanel,
  specs: KernelSpec.IManager | null
): boolean {
  const metadata = panel.content.model?.getMetadata('kernelspec') as
    | { name?: unknown }
    | undefined;
  const saved = typeof metadata?.name === 'string' ? metadata.name : undefined;
  return sessionIsSandboxed(panel.sessionContext, specs, saved);
}

/** Whether a session's kernel (or the kernel it is starting, or `also`) is sandboxed. */
export function sessionIsSandboxed(
  session: ISessionContext,
  specs: KernelSpec.IManager | null,
  also?: string
): boolean {
  const all = specs?.specs?.kernelspecs ?? {};
  const names = [session.session?.kernel?.name, session.kernelPreference.name, also];
  return names.some(name => !!name && isSandboxedKernel(name, all[name]));
}

/** What a code console looks like from the shell (no dependency on the console package). */
interface IConsoleLike {
  readonly console?: { readonly rendermime?: IRenderMimeRegistry };
  readonly sessionContext?: ISessionContext;
}

/**
 * Code consoles render their kernel's outputs through their own registry clone: guard each
 * one as it enters the shell (before any code of a sandboxed kernel can run in it).
 */
function guardConsoles(app: JupyterFrontEnd, specs: KernelSpec.IManager | null): void {
  const scan = (): void => {
    for (const widget of app.shell.widgets('main')) {
      const panel = widget as unknown as IConsoleLike;
      const rendermime = panel.console?.rendermime;
      const session = panel.sessionContext;
      if (rendermime && session && typeof rendermime.createRenderer === 'function') {
        guardRendermime(rendermime, () => sessionIsSandboxed(session, specs));
      }
    }
  };
  type Signals = Partial<Pick<ILabShell, 'layoutModified' | 'currentChanged'>>;
  const shell = app.shell as unknown as Signals;
  shell.layoutModified?.connect(scan);
  shell.currentChanged?.connect(scan);
}

export const outputIsolationPlugin: JupyterFrontEndPlugin<void> = {
  id: 'aiide:output-isolation',
  description: 'Isolates the active outputs of sandboxed kernels; renders model text safely.',
  autoStart: true,
  requires: [IRenderMimeRegistry],
  activate: (app: JupyterFrontEnd, rendermime: IRenderMimeRegistry): void => {
    rendermime.addFactory(modelTextRendererFactory, MODEL_TEXT_RANK);
    const specs = app.serviceManager.kernelspecs;
    // A widget extension runs as the panel is created, before its outputs are rendered.
    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (panel: NotebookPanel): IDisposable => {
        guardRendermime(panel.content.rendermime, () => panelIsSandboxed(panel, specs));
        return new DisposableDelegate(() => undefined);
      }
    });
    guardConsoles(app, specs);
  }
};
