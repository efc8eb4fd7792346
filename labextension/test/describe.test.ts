import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  describeStatus,
  describeUnreachable,
  flagsAttribute,
  planNotices
} from '../src/status/describe';
import { exampleStatus } from './fixtures';

describe('describeStatus', () => {
  test('no model: marks the item and warns with the server help text exactly', () => {
    const status = exampleStatus();
    const view = describeStatus(status);
    assert.equal(view.text, 'Sandbox on · no model');
    assert.deepEqual(view.flags, ['no-model']);
    assert.equal(view.notices.length, 1);
    assert.equal(view.notices[0].type, 'warning');
    assert.equal(view.notices[0].message, status.model.help);
  });

  test('everything configured: names the backend, no notices', () => {
    const status = exampleStatus();
    status.model = { configured: true, help: null };
    const view = describeStatus(status);
    assert.equal(view.text, 'Sandbox on');
    assert.deepEqual(view.flags, []);
    assert.deepEqual(view.notices, []);
    assert.equal(flagsAttribute(view.flags), 'ok');
  });

  test('models from a key broker: no warning, the tooltip says where they come from', () => {
    const status = exampleStatus();
    status.model = { configured: true, help: null, source: "the course's key broker" };
    const view = describeStatus(status);
    assert.equal(view.text, 'Sandbox on');
    assert.deepEqual(view.notices, []);
    assert.match(view.title, /Model: through the course's key broker/);
  });

  test('a local model that needs no key is a model: no warning, the tooltip names it', () => {
    const status = exampleStatus();
    // What the server answers for c.Agent.models = [a local OpenAI-compatible server].
    status.model = { configured: true, help: null, models: ['local-qwen'] };
    const view = describeStatus(status);
    assert.equal(view.text, 'Sandbox on');
    assert.deepEqual(view.flags, []);
    assert.deepEqual(view.notices, []);
    assert.match(view.title, /^Model: local-qwen$/m);
  });

  test('default backend unavailable: error with its detail and fix', () => {
    const status = exampleStatus();
    status.sandbox.default_backend = 'docker';
    status.model = { configured: true, help: null };
    const view = describeStatus(status);
    assert.equal(view.text, 'No sandbox');
    assert.deepEqual(view.flags, ['no-sandbox']);
    assert.equal(view.notices.length, 1);
    const [notice] = view.notices;
    assert.equal(notice.type, 'error');
    assert.match(notice.message, /"docker"/);
    assert.match(notice.message, /docker daemon not reachable/);
    assert.match(notice.message, /sudo apt-get install docker\.io/);
  });

  test('unknown default backend counts as unavailable', () => {
    const status = exampleStatus();
    status.sandbox.default_backend = 'firecracker';
    const view = describeStatus(status);
    assert.deepEqual(view.flags, ['no-sandbox', 'no-model']);
    assert.equal(view.text, 'No sandbox · no model');
    assert.match(view.notices[0].message, /"firecracker" is not known/);
  });

  test('unenforced limits are marked but raise no notice', () => {
    const status = exampleStatus();
    status.model = { configured: true, help: null };
    status.sandbox.limits = { enforced: false, detail: 'no cgroup controllers' };
    const view = describeStatus(status);
    assert.equal(view.text, 'Sandbox on, no limits');
    assert.deepEqual(view.flags, ['no-limits']);
    assert.deepEqual(view.notices, []);
    assert.match(view.title, /NOT enforced \(no cgroup controllers\)/);
  });

  test('the model warning can be switched off, the mark stays', () => {
    const view = describeStatus(exampleStatus(), { showModelWarning: false });
    assert.deepEqual(view.flags, ['no-model']);
    assert.deepEqual(view.notices, []);
  });

  test('missing help text falls back to a hint naming the key', () => {
    const status = exampleStatus();
    status.model.help = null;
    assert.match(describeStatus(status).notices[0].message, /ANTHROPIC_API_KEY/);
  });

  test('tooltip lists every backend and the limits', () => {
    const { title } = describeStatus(exampleStatus());
    assert.match(title, /^aiide 0\.1\.0/);
    assert.match(title, /Sandbox: bubblewrap \(bwrap\): available \(bubblewrap 0\.8\.0\)/);
    assert.match(title, /also Docker containers \(docker\): not available/);
    assert.match(title, /no network and no access to files outside their folder/);
    assert.match(title, /Limits: enforced \(cgroup v1/);
  });
});

describe('describeUnreachable', () => {
  test('flags the item and warns once with the reason', () => {
    const view = describeUnreachable('404 Not Found');
    assert.equal(view.text, 'aiide offline');
    assert.equal(flagsAttribute(view.flags), 'unreachable');
    assert.equal(view.notices.length, 1);
    assert.match(view.notices[0].message, /404 Not Found/);
  });
});

describe('planNotices', () => {
  const model = describeStatus(exampleStatus()).notices[0];

  test('shows what is new', () => {
    assert.deepEqual(planNotices([], [model]), { show: [model], dismiss: [] });
  });

  test('leaves a notice on screen alone when it still applies', () => {
    assert.deepEqual(planNotices([model.key], [model]), { show: [], dismiss: [] });
  });

  test('dismisses a notice that no longer applies', () => {
    assert.deepEqual(planNotices([model.key], []), { show: [], dismiss: [model.key] });
  });

  test('a changed message replaces the old notice', () => {
    const changed = { ...model, message: 'other', key: 'model\u0000other' };
    assert.deepEqual(planNotices([model.key], [changed]), {
      show: [changed],
      dismiss: [model.key]
    });
  });

  test('never shows the same notice twice in one plan', () => {
    assert.deepEqual(planNotices([], [model, model]).show, [model]);
  });
});
