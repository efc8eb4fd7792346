import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { canRun, cellRequest, errorText, stripAnsi, type ICellSnapshot } from '../src/cells/prompts';

const cell = (over: Partial<ICellSnapshot> = {}): ICellSnapshot => ({
  path: 'work/analysis.ipynb',
  cellId: 'c7',
  index: 2,
  cellType: 'code',
  source: 'df.groupby("k").mean()',
  outputs: [],
  ...over
});

const failing = cell({
  outputs: [
    { output_type: 'stream', name: 'stdout', text: 'before\n' },
    {
      output_type: 'error',
      ename: 'KeyError',
      evalue: "'k'",
      traceback: [
        '\u001b[0;31m---------------------------------------------------------------------------\u001b[0m',
        '\u001b[0;31mKeyError\u001b[0m                                  Traceback (most recent call last)',
        'Cell \u001b[0;32mIn[3], line 1\u001b[0m\n----> 1 df.groupby("k").mean()',
        "\u001b[0;31mKeyError\u001b[0m: 'k'"
      ]
    }
  ]
});

describe('cell actions: what they ask', () => {
  test('Explain quotes the cell and asks without tools, with the cell as context', () => {
    const r = cellRequest('explain', cell());
    assert.equal(r.task, 'chat');
    assert.deepEqual(r.context, { notebook: 'work/analysis.ipynb', cell_id: 'c7' });
    assert.match(r.text, /cell 3 of work\/analysis\.ipynb/);
    assert.match(r.text, /```python\ndf\.groupby\("k"\)\.mean\(\)\n```/);
  });

  test('Fix this error sends the traceback as plain text, to the agent', () => {
    const r = cellRequest('fix', failing);
    assert.equal(r.task, 'agent');
    assert.match(r.text, /KeyError: 'k'/);
    assert.match(r.text, /Traceback \(most recent call last\)/);
    assert.doesNotMatch(r.text, /\u001b/);
    assert.match(r.text, /run the cell again/);
  });

  test('Fix is only offered for a cell with an error; Explain and Generate need source', () => {
    assert.equal(canRun('fix', cell()), false);
    assert.equal(canRun('fix', failing), true);
    assert.equal(canRun('explain', cell({ source: '  ' })), false);
    assert.equal(canRun('generate', cell({ cellType: 'markdown', source: 'Plot prices by month' })), true);
  });

  test('Generate asks the agent for a new cell after this one', () => {
    const r = cellRequest('generate', cell({ cellType: 'markdown', source: 'Plot prices by month' }));
    assert.equal(r.task, 'agent');
    assert.match(r.text, /text asks for/);
    assert.match(r.text, /new code cell right after cell 3/);
    assert.match(r.text, /Plot prices by month/);
  });

  test('a source containing a fence is quoted with a longer fence', () => {
    const r = cellRequest('explain', cell({ source: 'print("```")' }));
    assert.match(r.text, /````python\nprint\("```"\)\n````/);
  });

  test('errorText and stripAnsi', () => {
    assert.equal(stripAnsi('\u001b[0;31mRed\u001b[0m'), 'Red');
    assert.equal(errorText([]), null);
    const text = errorText([{ output_type: 'error', ename: 'ValueError', evalue: 'bad', traceback: [] }]);
    assert.equal(text, 'ValueError: bad');
  });
});
