import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Signal } from '@lumino/signaling';

import type { IKernelEvent } from '../src/api/types';
import { type IWatchedSession, KernelNoticeWatcher } from '../src/kernels/watcher';

/** A stand-in for a notebook's session context with real Lumino signals. */
class FakeSession implements IWatchedSession {
  session: { kernel: { id: string } | null } | null;
  readonly statusChanged = new Signal<this, string>(this);
  readonly kernelChanged = new Signal<this, { newValue: { id: string } | null }>(this);
  readonly disposed = new Signal<this, void>(this);

  constructor(kernelId: string | null) {
    this.session = { kernel: kernelId ? { id: kernelId } : null };
  }

  changeKernel(id: string): void {
    this.session = { kernel: { id } };
    this.kernelChanged.emit({ newValue: { id } });
  }
}

const flush = () => new Promise(resolve => setImmediate(resolve));

function setup(events: Record<string, IKernelEvent[]>, fail = false) {
  const notified: string[] = [];
  const logged: string[] = [];
  const fetched: string[] = [];
  const watcher = new KernelNoticeWatcher({
    fetchEvents: async id => {
      fetched.push(id);
      if (fail) {
        throw new Error('404 Not Found');
      }
      return [...(events[id] ?? [])];
    },
    notify: event => notified.push(event.message),
    log: message => logged.push(message),
    delaysMs: [0, 10],
    schedule: (cb, _ms) => cb()
  });
  return { watcher, notified, logged, fetched };
}

const oom = { time: '2025-01-01T00:00:00Z', kind: 'died', message: 'exceeded 2 GiB' };
const old = { time: '2024-12-31T00:00:00Z', kind: 'died', message: 'old death' };

describe('KernelNoticeWatcher', () => {
  test('a death reported after autorestarting is shown once', async () => {
    const events: Record<string, IKernelEvent[]> = { k1: [] };
    const { watcher, notified } = setup(events);
    const session = new FakeSession('k1');
    watcher.watch(session);
    await flush();
    events.k1.push(oom);
    session.statusChanged.emit('autorestarting');
    await flush();
    session.statusChanged.emit('dead');
    await flush();
    assert.deepEqual(notified, ['exceeded 2 GiB']);
  });

  test('history from before the page watched the kernel is not shown', async () => {
    const events: Record<string, IKernelEvent[]> = { k1: [old] };
    const { watcher, notified } = setup(events);
    const session = new FakeSession('k1');
    watcher.watch(session);
    await flush();
    events.k1.push(oom);
    session.statusChanged.emit('restarting');
    await flush();
    assert.deepEqual(notified, ['exceeded 2 GiB']);
  });

  test('a kernel started later is watched too', async () => {
    const events: Record<string, IKernelEvent[]> = { k2: [] };
    const { watcher, notified } = setup(events);
    const session = new FakeSession(null);
    watcher.watch(session);
    session.changeKernel('k2');
    await flush();
    events.k2.push(oom);
    session.statusChanged.emit('dead');
    await flush();
    assert.deepEqual(notified, ['exceeded 2 GiB']);
  });

  test('busy and idle do not ask the server', async () => {
    const { watcher, fetched } = setup({ k1: [] });
    const session = new FakeSession('k1');
    watcher.watch(session);
    await flush();
    session.statusChanged.emit('busy');
    session.statusChanged.emit('idle');
    await flush();
    assert.deepEqual(fetched, ['k1']); // only the baseline
  });

  test('fetch errors are logged, never thrown', async () => {
    const { watcher, notified, logged } = setup({}, true);
    const session = new FakeSession('k1');
    watcher.watch(session);
    session.statusChanged.emit('dead');
    await flush();
    assert.deepEqual(notified, []);
    assert.ok(logged.length >= 2);
    assert.ok(logged.every(m => m.includes('k1')));
  });

  test('a disposed session is no longer watched', async () => {
    const { watcher, fetched } = setup({ k1: [] });
    const session = new FakeSession('k1');
    watcher.watch(session);
    await flush();
    session.disposed.emit();
    session.statusChanged.emit('dead');
    await flush();
    assert.deepEqual(fetched, ['k1']);
  });

  test('a death recorded a moment after the restart began is still shown', async () => {
    const events: Record<string, IKernelEvent[]> = { k1: [] };
    const timers: Array<[number, () => void]> = [];
    const notified: string[] = [];
    const watcher = new KernelNoticeWatcher({
      fetchEvents: async id => [...(events[id] ?? [])],
      notify: event => notified.push(event.message),
      log: () => undefined,
      delaysMs: [0, 1500],
      schedule: (cb, ms) => void timers.push([ms, cb])
    });
    const session = new FakeSession('k1');
    watcher.watch(session);
    await flush();
    session.statusChanged.emit('autorestarting');
    assert.deepEqual(timers.map(([ms]) => ms), [0, 1500]);
    timers[0][1]();
    await flush();
    assert.deepEqual(notified, []);
    events.k1.push(oom);
    timers[1][1]();
    await flush();
    assert.deepEqual(notified, ['exceeded 2 GiB']);
  });

  test('a death that lands while the baseline request is out is not swallowed', async () => {
    let answer: (events: IKernelEvent[]) => void = () => undefined;
    let calls = 0;
    const notified: string[] = [];
    const watcher = new KernelNoticeWatcher({
      fetchEvents: id => {
        calls += 1;
        // the first (baseline) request answers late, after the kernel died
        return calls === 1
          ? new Promise<IKernelEvent[]>(resolve => (answer = resolve))
          : Promise.reject(new Error(`kernel ${id} gone`));
      },
      notify: event => notified.push(event.message),
      log: () => undefined,
      delaysMs: [0],
      schedule: cb => cb()
    });
    const session = new FakeSession('k1');
    watcher.watch(session);
    session.statusChanged.emit('dead');
    answer([oom]);
    await flush();
    assert.deepEqual(notified, ['exceeded 2 GiB']);
  });
});
