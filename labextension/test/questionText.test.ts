import './dom';

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { cellRequest } from '../src/cells/prompts';
import { questionNode, questionPieces } from '../src/chat/questionText';

describe('question bubbles', () => {
  test('fenced blocks are code, the rest is the text as sent', () => {
    const text = 'Fix this error in cell 1 of a.ipynb:\n\n```python\nx = 1 / 0\n```\n\nThe error:\n\n```\nZeroDivisionError: division by zero\n```';
    assert.deepEqual(questionPieces(text), [
      { kind: 'text', text: 'Fix this error in cell 1 of a.ipynb:' },
      { kind: 'code', text: 'x = 1 / 0' },
      { kind: 'text', text: 'The error:' },
      { kind: 'code', text: 'ZeroDivisionError: division by zero' }
    ]);
    const node = questionNode(text);
    assert.doesNotMatch(node.textContent ?? '', /```/);
    assert.equal(node.querySelectorAll('pre code').length, 2);
  });

  test('plain text, markup and an unclosed or longer fence stay what they are', () => {
    assert.deepEqual(questionPieces('use *args and <b>x</b>'), [{ kind: 'text', text: 'use *args and <b>x</b>' }]);
    assert.equal(questionNode('<img src=x onerror=alert(1)>').querySelector('img'), null);
    assert.deepEqual(questionPieces('```\nTraceback\n----> 1 1/0\n\nZeroDivisionError: x\n```'), [
      { kind: 'code', text: 'Traceback\n----> 1 1/0\n\nZeroDivisionError: x' }
    ]);
    assert.deepEqual(questionPieces('see:\n```\nopen\nstill open'), [
      { kind: 'text', text: 'see:' },
      { kind: 'code', text: 'open\nstill open' }
    ]);
    assert.deepEqual(questionPieces('````\na ``` b\n````'), [{ kind: 'code', text: 'a ``` b' }]);
    assert.deepEqual(questionPieces(''), [{ kind: 'text', text: '' }]);
  });

  test("a cell action's question reads without fences", () => {
    const request = cellRequest('fix', {
      path: 'a.ipynb',
      cellId: 'c1',
      index: 0,
      cellType: 'code',
      source: 'x = 1 / 0',
      outputs: [{ output_type: 'error', ename: 'ZeroDivisionError', evalue: 'division by zero', traceback: [] }]
    });
    const node = questionNode(request.text);
    assert.doesNotMatch(node.textContent ?? '', /```/);
    assert.equal(node.querySelector('pre code')?.textContent, 'ZeroDivisionError: division by zero');
  });
});
