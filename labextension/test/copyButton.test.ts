import { window } from './dom';

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import { COPIED_MS, copyButton } from '../src/chat/copyButton';

after(() => window.happyDOM.close());

describe('Copy on an answer code block', () => {
  test('says "Copied" on the button for a moment (no toast over the chat box)', async () => {
    let copied = 0;
    const node = copyButton(() => copied++);
    node.click();
    assert.equal(copied, 1);
    assert.equal(node.textContent, 'Copied');
    await new Promise(resolve => setTimeout(resolve, COPIED_MS + 100));
    assert.equal(node.textContent, 'Copy');
  });
});
