/** The chat box's pure helpers: slash commands, @ mentions, argument editing. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { fromForm, isEdited, toForm } from '../src/chat/args';
import {
  MAX_MENTIONS,
  cellCandidate,
  collectMentions,
  fileCandidate,
  mentionQuery,
  rankCandidates
} from '../src/chat/mentions';
import { completeSlash, parseSlash } from '../src/chat/slash';

describe('slash commands', () => {
  test('known commands map to a task and a text', () => {
    const fix = parseSlash('/fix  use the right column ');
    assert.ok(fix.kind === 'command');
    assert.equal(fix.command.task, 'agent');
    assert.equal(fix.rest, 'use the right column');
    assert.match(fix.command.expand(fix.rest), /Fix the error in the active cell.*use the right column/);
    const ask = parseSlash('/ask what is a groupby?');
    assert.ok(ask.kind === 'command' && ask.command.task === 'chat');
    assert.equal(ask.command.expand(ask.rest), 'what is a groupby?');
    const explain = parseSlash('/explain');
    assert.ok(explain.kind === 'command' && /active cell/.test(explain.command.expand('')));
  });

  test('/learn is not a chat message', () => {
    const learn = parseSlash('/learn data/');
    assert.ok(learn.kind === 'command' && learn.command.task === null && learn.rest === 'data/');
  });

  test('unknown commands and plain text', () => {
    assert.deepEqual(parseSlash('/frobnicate x'), { kind: 'unknown', name: 'frobnicate' });
    assert.deepEqual(parseSlash('what does /fix do?'), { kind: 'none' });
    assert.deepEqual(parseSlash('path/to/file'), { kind: 'none' });
  });

  test('completion of a partial command', () => {
    assert.deepEqual(completeSlash('/ex').map(c => c.name), ['explain']);
    assert.equal(completeSlash('/').length, 5);
    assert.deepEqual(completeSlash('/explain x'), []);
  });
});

describe('@ mentions', () => {
  test('the word being typed after @', () => {
    assert.deepEqual(mentionQuery('look at @dat', 12), { start: 8, query: 'dat' });
    assert.deepEqual(mentionQuery('@', 1), { start: 0, query: '' });
    assert.equal(mentionQuery('mail me@example', 15), null);
    assert.equal(mentionQuery('@data x', 7), null);
  });

  test('ranking: label prefix first, then substring, then path', () => {
    const candidates = [
      fileCandidate('data/prices.csv'),
      fileCandidate('notes/old_prices.md'),
      fileCandidate('prices/readme.md'),
      cellCandidate('a.ipynb', 'c1', 0, '\n# load prices\nimport pandas')
    ];
    assert.deepEqual(
      rankCandidates(candidates, 'pri').map(c => c.token),
      ['@data/prices.csv', '@notes/old_prices.md', '@prices/readme.md', '@a.ipynb#c1']
    );
    assert.equal(rankCandidates(candidates, '')[0].token, '@data/prices.csv', 'ties keep order');
    assert.equal(candidates[3].detail, '# load prices');
    assert.equal(candidates[3].label, 'cell 1');
  });

  test('only mentions still in the text are sent, once each, at most 20', () => {
    const picked = [fileCandidate('a.csv'), fileCandidate('b.csv'), fileCandidate('a.csv')];
    assert.deepEqual(collectMentions('compare @a.csv with this', picked), [{ kind: 'file', path: 'a.csv' }]);
    const many = Array.from({ length: 30 }, (_, i) => fileCandidate(`f${i}.csv`));
    const text = many.map(c => c.token).join(' ');
    assert.equal(collectMentions(text, many).length, MAX_MENTIONS);
    const cell = cellCandidate('a.ipynb', 'c3', 2, 'x');
    assert.deepEqual(collectMentions(`fix ${cell.token}`, [cell]), [{ kind: 'cell', path: 'a.ipynb', cell_id: 'c3' }]);
  });
});

describe('editing tool arguments', () => {
  const args = { path: 'a.ipynb', source: 'print(1)\nprint(2)', after_id: null, cell_type: 'code' };

  test('string arguments get their own box, a cell reference is a choice, the rest is JSON', () => {
    const form = toForm({ ...args, extra: [1] });
    assert.deepEqual(form.strings.map(([k]) => k), ['path', 'source', 'cell_type']);
    assert.deepEqual(form.cells, [['after_id', null]]);
    assert.deepEqual(JSON.parse(form.rest), { extra: [1] });
    form.cells[0] = ['after_id', 'c1'];
    assert.deepEqual(fromForm(form), { ok: true, arguments: { ...args, extra: [1], after_id: 'c1' } });
  });

  test('an unchanged form is not an edit', () => {
    const form = toForm(args);
    assert.deepEqual(fromForm(form), { ok: true, arguments: args });
    assert.equal(isEdited(args, form), false);
  });

  test('an edit is detected; invalid JSON is reported, not sent', () => {
    const form = toForm(args);
    form.strings[1] = ['source', 'print(3)'];
    assert.equal(isEdited(args, form), true);
    const result = fromForm(form);
    assert.ok(result.ok && result.arguments.source === 'print(3)');
    form.rest = '{nope';
    const bad = fromForm(form);
    assert.ok(!bad.ok && /not valid JSON/.test(bad.error));
    form.rest = '[1]';
    assert.ok(!fromForm(form).ok);
  });
});
