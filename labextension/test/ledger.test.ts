import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { EventLedger, shouldFetchEvents } from '../src/kernels/ledger';

const died = { time: '2025-01-01T00:00:00Z', kind: 'died', message: 'memory limit' };
const later = { time: '2025-01-01T00:05:00Z', kind: 'died', message: 'memory limit' };

describe('shouldFetchEvents', () => {
  test('after a kernel stops or restarts', () => {
    for (const status of ['autorestarting', 'restarting', 'dead']) {
      assert.equal(shouldFetchEvents(status), true, status);
    }
  });

  test('not during normal work', () => {
    for (const status of ['idle', 'busy', 'starting', 'unknown', 'terminating']) {
      assert.equal(shouldFetchEvents(status), false, status);
    }
  });
});

describe('EventLedger', () => {
  test('reports an event once', () => {
    const ledger = new EventLedger();
    assert.deepEqual(ledger.fresh('k1', [died]), [died]);
    assert.deepEqual(ledger.fresh('k1', [died]), []);
  });

  test('the same message at another time is a new event', () => {
    const ledger = new EventLedger();
    ledger.fresh('k1', [died]);
    assert.deepEqual(ledger.fresh('k1', [died, later]), [later]);
  });

  test('duplicates inside one answer are reported once', () => {
    assert.deepEqual(new EventLedger().fresh('k1', [died, { ...died }]), [died]);
  });

  test('events of different kernels are independent', () => {
    const ledger = new EventLedger();
    ledger.fresh('k1', [died]);
    assert.deepEqual(ledger.fresh('k2', [died]), [died]);
  });

  test('baselined history is never reported', () => {
    const ledger = new EventLedger();
    ledger.baseline('k1', [died]);
    assert.deepEqual(ledger.fresh('k1', [died, later]), [later]);
  });
});
