import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ResponseShapeError, parseKernelEvents, parseStatus } from '../src/api/validate';
import { exampleStatus } from './fixtures';

describe('parseStatus', () => {
  test('accepts the documented answer unchanged', () => {
    const body = JSON.parse(JSON.stringify(exampleStatus()));
    assert.deepEqual(parseStatus(body), exampleStatus());
  });

  test('ignores fields it does not know', () => {
    const body = { ...exampleStatus(), extra: 1 };
    assert.deepEqual(parseStatus(body), exampleStatus());
  });

  test('names the path of a wrong field', () => {
    const body = JSON.parse(JSON.stringify(exampleStatus()));
    body.sandbox.backends.bwrap.available = 'yes';
    assert.throws(() => parseStatus(body), {
      name: 'ResponseShapeError',
      message: /\$\.sandbox\.backends\.bwrap\.available/
    });
  });

  test('rejects a non-object body', () => {
    assert.throws(() => parseStatus('<html>'), ResponseShapeError);
    assert.throws(() => parseStatus(null), ResponseShapeError);
  });
});

describe('parseKernelEvents', () => {
  const body = {
    kernel_id: 'k1',
    events: [
      {
        time: '2025-01-01T00:00:00Z',
        kind: 'died',
        message: 'The kernel exceeded its 2 GiB memory limit and was stopped (c.SandboxPolicy.memory_limit).'
      }
    ]
  };

  test('accepts the documented answer', () => {
    assert.deepEqual(parseKernelEvents(body), body);
  });

  test('rejects an event without a message', () => {
    const bad = { kernel_id: 'k1', events: [{ time: 't', kind: 'died' }] };
    assert.throws(() => parseKernelEvents(bad), { message: /\$\.events\[0\]\.message/ });
  });

  test('rejects a missing events list', () => {
    assert.throws(() => parseKernelEvents({ kernel_id: 'k1' }), ResponseShapeError);
  });
});
