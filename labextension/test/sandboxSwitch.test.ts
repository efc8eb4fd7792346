/**
 * The sandbox as the default path, in the chat (issue 13, item 2): a call refused with
 * `kernel_not_sandboxed` offers one click that switches the notebook to the sandboxed
 * kernel; an approval the admin let through for an unsandboxed kernel says it runs
 * outside the sandbox; a cell runs only in the kernel the server checked.
 */
import { window } from './dom';

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import { parseFrame } from '../src/api/frames';
import { CallCard, type CallBlock, type ICallHandlers } from '../src/chat/callCard';
import { Transcript } from '../src/chat/transcript';
import { kernelMismatch, SANDBOXED_KERNEL, switchToSandbox } from '../src/notebook/sandbox';

after(() => window.happyDOM.close());

function handlers(switched: (string | null)[], outcome: Promise<void> = Promise.resolve()) {
  const none = (): boolean => true;
  const h: ICallHandlers = {
    approve: none,
    reject: none,
    confirm: () => undefined,
    refuse: () => undefined,
    undo: () => undefined,
    switchToSandbox: path => {
      switched.push(path);
      return outcome;
    }
  };
  return h;
}

function refusedCall(path: string | undefined): CallBlock {
  return {
    kind: 'call',
    key: 'k1',
    runId: 'run_1',
    callId: 'toolu_1',
    name: 'execute_code',
    arguments: { code: 'print(1)', ...(path ? { path } : {}) },
    risk: 'high',
    decision: 'deny',
    approval: null,
    request: null,
    result: {
      ok: false,
      content: "error (kernel_not_sandboxed): this notebook's kernel is not sandboxed",
      error: { code: 'kernel_not_sandboxed', message: "this notebook's kernel is not sandboxed" },
      outputs: null,
      citations: []
    }
  };
}

function switchButton(card: CallCard): HTMLButtonElement | undefined {
  return [...card.node.querySelectorAll('button')].find(b =>
    b.textContent?.includes('Switch this notebook to the sandboxed kernel')
  );
}

const settle = (): Promise<void> => new Promise(resolve => setTimeout(resolve, 0));

describe('a call refused because the kernel is not sandboxed', () => {
  test('offers the switch, which changes that notebook to the sandboxed kernel', async () => {
    const switched: (string | null)[] = [];
    const card = new CallCard(handlers(switched));
    card.update(refusedCall('analysis/nb.ipynb'), false);
    const go = switchButton(card);
    assert.ok(go, card.node.textContent ?? '');
    go.click();
    await settle();
    assert.deepEqual(switched, ['analysis/nb.ipynb']);
    assert.match(card.node.textContent ?? '', /Switched to Python 3 \(sandboxed\)/);
    assert.equal(switchButton(card), undefined);
  });

  test('without a path it switches the current notebook', async () => {
    const switched: (string | null)[] = [];
    const card = new CallCard(handlers(switched));
    card.update(refusedCall(undefined), false);
    switchButton(card)?.click();
    await settle();
    assert.deepEqual(switched, [null]);
  });

  test('says why when the switch fails, and can be tried again', async () => {
    const switched: (string | null)[] = [];
    const card = new CallCard(handlers(switched, Promise.reject(new Error('not open here'))));
    card.update(refusedCall('nb.ipynb'), false);
    switchButton(card)?.click();
    await settle();
    assert.match(card.node.textContent ?? '', /Could not switch: not open here/);
    assert.ok(switchButton(card));
  });

  test('other failures offer no switch', () => {
    const block = refusedCall('nb.ipynb');
    block.result = { ...block.result!, error: { code: 'denied', message: 'no' } };
    const card = new CallCard(handlers([]));
    card.update(block, false);
    assert.equal(switchButton(card), undefined);
  });
});

describe('an approval for an unsandboxed kernel', () => {
  function approvalEvent(outside: boolean): unknown {
    return {
      type: 'approval_required',
      conversation_id: 'cv_1',
      run_id: 'run_1',
      seq: 2,
      ts: 1,
      call_id: 'toolu_1',
      name: 'execute_code',
      arguments: { path: 'nb.ipynb', code: 'print(1)' },
      risk: 'high',
      expires_at: Date.now() / 1000 + 600,
      patch: null,
      ...(outside ? { outside_sandbox: true } : {})
    };
  }

  function cardFor(outside: boolean): CallCard {
    const frame = parseFrame(JSON.stringify(approvalEvent(outside)));
    assert.equal(frame.kind, 'event');
    const transcript = new Transcript('cv_1');
    if (frame.kind === 'event') {
      transcript.apply(frame.event, false);
    }
    const block = transcript.blocks.find(b => b.kind === 'call') as CallBlock;
    const card = new CallCard(handlers([]));
    card.update(block, true);
    return card;
  }

  test('says it runs outside the sandbox', () => {
    const card = cardFor(true);
    const warning = card.node.querySelector('.aiide-Call-warning');
    assert.ok(warning);
    assert.match(warning.textContent ?? '', /Runs outside the sandbox/);
    card.dispose();
  });

  test('a sandboxed one says nothing of the kind', () => {
    const card = cardFor(false);
    assert.equal(card.node.querySelector('.aiide-Call-warning'), null);
    card.dispose();
  });
});

describe('the kernel a cell runs in', () => {
  test('the switch asks the session for the sandboxed kernel', async () => {
    const asked: unknown[] = [];
    await switchToSandbox({ changeKernel: async options => asked.push(options) });
    assert.deepEqual(asked, [{ name: SANDBOXED_KERNEL }]);
    assert.equal(SANDBOXED_KERNEL, 'aiide-python');
  });

  test('a cell runs only in the kernel the server checked', () => {
    assert.equal(kernelMismatch('k1', 'k1'), null);
    assert.equal(kernelMismatch(undefined, 'k1'), null); // an older server: as before
    assert.match(kernelMismatch('k1', 'k2') ?? '', /kernel changed/);
    assert.match(kernelMismatch(null, 'k2') ?? '', /kernel changed/);
  });

  test('notebook_execute frames carry the kernel id', () => {
    const frame = parseFrame(
      JSON.stringify({
        type: 'notebook_execute',
        conversation_id: 'cv_1',
        run_id: 'run_1',
        seq: 3,
        ts: 1,
        request_id: 'rq_1',
        path: 'nb.ipynb',
        cell_id: 'c1',
        kernel_id: 'k1'
      })
    );
    assert.equal(frame.kind, 'event');
    assert.equal(frame.kind === 'event' && frame.event.type === 'notebook_execute'
      ? frame.event.kernel_id
      : undefined, 'k1');
  });
});
