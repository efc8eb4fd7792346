/**
 * Output isolation: outputs of sandboxed kernels cannot script the lab (see `policy.ts`),
 * and model text (`%ai`) renders through the model-text sanitizer in every notebook.
 */
import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
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
  const all = specs?.specs?.kernelspecs ?? {};
  const session = panel.sessionContext;
  const metadata = panel.content.model?.getMetadata('kernelspec') as
    | { name?: unknown }
    | undefined;
  const names = [
    session.session?.kernel?.name,
    session.kernelPreference.name,
    typeof metadata?.name === 'string' ? metadata.name : undefined
  ];
  return names.some(name => !!name && isSandboxedKernel(name, all[name]));
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
  }
};
