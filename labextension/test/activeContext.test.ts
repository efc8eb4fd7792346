import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { INotebookTracker } from '@jupyterlab/notebook';
import { Signal } from '@lumino/signaling';
import type { Widget } from '@lumino/widgets';

import { ActiveContext, asFileEditor, type IMainArea } from '../src/chat/activeContext';

/** A text editor over `source` with the cursor on `line` (0-based) and `selected` chars. */
function editor(source: string, line: number, selected: [number, number] = [0, 0]) {
  return {
    getCursorPosition: () => ({ line, column: 0 }),
    getSelection: () => ({ start: { line: 0, column: selected[0] }, end: { line: 0, column: selected[1] } }),
    getOffsetAt: (p: { column: number }) => p.column,
    model: { sharedModel: { getSource: () => source } }
  };
}

function fileWidget(path: string, source: string, line: number, selected?: [number, number]) {
  const saved: string[] = [];
  return {
    widget: {
      isDisposed: false,
      context: {
        path,
        model: { dirty: true },
        isReady: true,
        save: async () => {
          saved.push(path);
        },
        pathChanged: new Signal<unknown, string>({})
      },
      content: { editor: editor(source, line, selected) }
    } as unknown as Widget,
    saved
  };
}

function notebookWidget(path: string) {
  return {
    isDisposed: false,
    context: { path, model: { dirty: false }, isReady: true, pathChanged: new Signal<unknown, string>({}) },
    content: { activeCell: null, activeCellIndex: 0 }
  } as unknown as Widget;
}

class MainArea implements IMainArea {
  currentWidget: Widget | null = null;
  readonly currentChanged = new Signal<unknown, unknown>(this);
  show(widget: Widget | null): void {
    this.currentWidget = widget;
    this.currentChanged.emit(widget);
  }
}

function trackerOf(notebook: Widget) {
  return {
    currentWidget: notebook,
    currentChanged: new Signal<unknown, unknown>({}),
    activeCellChanged: new Signal<unknown, unknown>({}),
    has: (w: Widget) => w === notebook
  } as unknown as INotebookTracker;
}

describe('the document a question is about', () => {
  test('a .py file focused in the editor is the context, not the last notebook', async () => {
    const notebook = notebookWidget('analysis.ipynb');
    const main = new MainArea();
    const active = new ActiveContext(trackerOf(notebook), main);
    assert.equal(active.context().notebook, 'analysis.ipynb');

    const { widget, saved } = fileWidget('lib/etl.py', 'import pandas', 11, [0, 6]);
    main.show(widget);
    assert.deepEqual(active.context(), { file: 'lib/etl.py', line: 12, selection: 'import' });
    assert.equal(active.label(), 'Context: lib/etl.py · line 12 · 6 selected characters');
    assert.equal(active.notebook, null);
    await active.save();
    assert.deepEqual(saved, ['lib/etl.py'], 'the file is saved before a question: the agent reads it from disk');

    main.show(null); // a launcher or the chat itself: the file is still the one in use
    assert.equal(active.context().file, 'lib/etl.py');

    main.show(notebook); // back to the notebook
    assert.equal(active.context().notebook, 'analysis.ipynb');
    assert.equal(active.context().file, undefined);
  });

  test('a closed file editor hands the context back to the notebook', () => {
    const notebook = notebookWidget('analysis.ipynb');
    const main = new MainArea();
    const active = new ActiveContext(trackerOf(notebook), main);
    const { widget } = fileWidget('etl.py', '', 0);
    main.show(widget);
    (widget as { isDisposed: boolean }).isDisposed = true;
    assert.equal(active.context().notebook, 'analysis.ipynb');
  });

  test('only a document with a text editor counts as a file editor', () => {
    assert.equal(asFileEditor(null), null);
    assert.equal(asFileEditor(notebookWidget('a.ipynb')), null);
    assert.equal(asFileEditor({ content: { editor: {} } } as unknown as Widget), null);
    assert.notEqual(asFileEditor(fileWidget('a.py', '', 0).widget), null);
  });
});
