/**
 * Code in the approval card's Edit form is edited in JupyterLab's own code editor
 * (CodeMirror through `IEditorServices`, as notebook cells are), with the language's
 * highlighting, not in a raw text box.
 */
import { CodeEditor, type IEditorServices } from '@jupyterlab/codeeditor';

import type { CodeFieldFactory } from '../notebook/bridge';

/** The MIME type JupyterLab's editor highlights each card language with. */
const MIME: Record<string, string> = {
  python: 'text/x-ipython',
  markdown: 'text/x-ipythongfm',
  json: 'application/json',
  javascript: 'text/javascript',
  typescript: 'text/typescript',
  sql: 'text/x-sql',
  r: 'text/x-rsrc',
  yaml: 'text/x-yaml',
  shell: 'text/x-sh'
};

export function codeFields(services: IEditorServices): CodeFieldFactory {
  return (text, onChange, language) => {
    const model = new CodeEditor.Model({ mimeType: MIME[language] ?? 'text/plain' });
    model.sharedModel.setSource(text);
    const changed = (): void => onChange(model.sharedModel.getSource());
    model.sharedModel.changed.connect(changed);
    const node = document.createElement('div');
    node.className = 'aiide-Call-editor jp-CodeMirrorEditor jp-Editor';
    const editor = services.factoryService.newInlineEditor({
      host: node,
      model,
      config: { lineNumbers: false, lineWrap: true }
    });
    return {
      node,
      dispose: () => {
        model.sharedModel.changed.disconnect(changed);
        editor.dispose();
        model.dispose();
      }
    };
  };
}
