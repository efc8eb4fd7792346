/**
 * Citations: labels found in answers, the links' URLs and words, the links as DOM built
 * from hostile paths and titles (text nodes and attribute values only), and the
 * citations carried by protocol frames into the transcript.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { parseFrame } from '../src/api/frames';
import { parseHit } from '../src/api/knowledge';
import type { ConversationEvent, ICitation } from '../src/api/protocol';
import { describeCall } from '../src/chat/describeCall';
import { knowledgeCandidate, mergeCandidates, fileCandidate } from '../src/chat/mentions';
import { Transcript } from '../src/chat/transcript';
import {
  cellIndexFor,
  citationHref,
  citationLink,
  citationList,
  citedIn,
  shortLabel,
  splitByLabels,
  targetOf,
  tooltip,
  type ICitationTarget
} from '../src/knowledge/citations';
import { event } from './harness';
import { FakeElement, withFakeDocument } from './knowledgeDom';

const CELL: ICitation = {
  path: 'analysis/sensors.ipynb',
  cell_id: 'cell-4',
  cell_index: 4,
  line_start: 1,
  line_end: 6,
  title: 'Weather station pipeline > Cleaning',
  label: 'analysis/sensors.ipynb, cell 5 (id cell-4)'
};
const LINES: ICitation = {
  path: 'lib/billing.py',
  cell_id: null,
  cell_index: null,
  line_start: 6,
  line_end: 9,
  title: 'def to_cents',
  label: 'lib/billing.py:6-9'
};
const HOSTILE_PATH = 'x/<img src=x onerror=alert(1)>"\'&.ipynb';
const HOSTILE: ICitation = {
  path: HOSTILE_PATH,
  cell_id: 'c"1<script>',
  cell_index: 0,
  line_start: 1,
  line_end: 1,
  title: '<script>alert("title")</script>',
  label: `${HOSTILE_PATH}, cell 1`
};

describe('citation labels in answer text', () => {
  test('each quoted label becomes a segment of its own, the rest stays text', () => {
    const text = `Cleaning is in [${CELL.label}]; cents in [${LINES.label}].`;
    const segments = splitByLabels(text, [LINES, CELL]);
    assert.deepEqual(
      segments.map(s => ('citation' in s ? `<${s.citation.path}>` : s.text)),
      ['Cleaning is in [', '<analysis/sensors.ipynb>', ']; cents in [', '<lib/billing.py>', '].']
    );
    assert.equal(segments.map(s => s.text).join(''), text);
  });

  test('the longest label wins where one label starts another', () => {
    const short = { ...LINES, label: 'a.py:1-2', line_end: 2 };
    const long = { ...LINES, label: 'a.py:1-20', line_end: 20 };
    const segments = splitByLabels('see a.py:1-20 and a.py:1-2', [short, long]);
    const cited = segments.flatMap(s => ('citation' in s ? [s.citation.line_end] : []));
    assert.deepEqual(cited, [20, 2]);
  });

  test('cited citations come once each, in order of first appearance', () => {
    const text = `${LINES.label}, then ${CELL.label}, again ${LINES.label}`;
    assert.deepEqual(citedIn(text, [CELL, LINES, CELL]).map(c => c.label), [LINES.label, CELL.label]);
    assert.deepEqual(citedIn('nothing quoted', [CELL]), []);
  });
});

describe('where a citation leads', () => {
  test('a notebook citation targets the cell by id and index, a text file the line', () => {
    assert.deepEqual(targetOf(CELL), {
      path: 'analysis/sensors.ipynb',
      cellId: 'cell-4',
      cellIndex: 4,
      line: 1
    });
    assert.deepEqual(targetOf(LINES), { path: 'lib/billing.py', cellId: null, cellIndex: null, line: 6 });
  });

  test('the cell is found by id, by index when the id is gone, else not at all', () => {
    const ids = ['a', 'b', 'cell-4'];
    assert.equal(cellIndexFor(ids, { cellId: 'cell-4', cellIndex: 0 }), 2);
    assert.equal(cellIndexFor(ids, { cellId: 'gone', cellIndex: 1 }), 1);
    assert.equal(cellIndexFor(ids, { cellId: 'gone', cellIndex: 7 }), -1);
    assert.equal(cellIndexFor(ids, { cellId: null, cellIndex: null }), -1);
  });

  test('link words and tooltips say file and cell or lines', () => {
    assert.equal(shortLabel(CELL), 'sensors.ipynb · cell 5');
    assert.equal(shortLabel(LINES), 'billing.py:6-9');
    assert.equal(
      tooltip(CELL),
      'Open analysis/sensors.ipynb, cell 5 (id cell-4) — Weather station pipeline > Cleaning'
    );
    assert.equal(tooltip(LINES), 'Open lib/billing.py, lines 6-9 — def to_cents');
  });

  test('the href is the lab tree URL with each part encoded: no scheme, no way up', () => {
    assert.equal(citationHref('/user/ada/', 'a b/c#d?.ipynb'), '/user/ada/lab/tree/a%20b/c%23d%3F.ipynb');
    const js = citationHref('/', 'javascript:alert(1)');
    assert.equal(js, '/lab/tree/javascript%3Aalert%281%29');
    assert.equal(citationHref('http://h:1/base', '../../etc/passwd'), 'http://h:1/base/lab/tree/etc/passwd');
    const hostile = citationHref('/', HOSTILE_PATH);
    assert.ok(!/[<>"'() ]/.test(hostile), hostile);
    assert.ok(hostile.startsWith('/lab/tree/x/'));
  });
});

describe('citation links as DOM', () => {
  test('hostile paths and titles become text and attribute values, never markup', () => {
    const opened: ICitationTarget[] = [];
    const link = withFakeDocument(
      () => citationLink(HOSTILE, t => opened.push(t), '/') as unknown as FakeElement
    );
    assert.equal(link.tagName, 'A');
    assert.equal(link.all().length, 1, 'no element made from the data');
    assert.equal(link.textContent, 'x/<img src=x onerror=alert(1)>"\'&.ipynb'.split('/').pop() + ' · cell 1');
    assert.equal(link.getAttribute('data-path'), HOSTILE_PATH);
    assert.equal(link.getAttribute('data-cell-id'), 'c"1<script>');
    assert.ok(link.getAttribute('title')!.includes('<script>alert("title")</script>'));
    const href = link.getAttribute('href')!;
    assert.ok(href.startsWith('/lab/tree/') && !/[<>"]/.test(href), href);
    assert.deepEqual([...link.attributes.keys()].filter(k => k.startsWith('on')), []);
  });

  test('a plain click opens the citation in the lab; a modified click is the browser’s', () => {
    const opened: ICitationTarget[] = [];
    const link = withFakeDocument(
      () => citationLink(CELL, t => opened.push(t), '/') as unknown as FakeElement
    );
    let prevented = 0;
    const click = (extra: Record<string, unknown>) =>
      link.dispatch('click', { button: 0, preventDefault: () => prevented++, ...extra });
    click({ ctrlKey: true });
    click({ button: 1 });
    assert.equal(opened.length, 0);
    click({});
    assert.equal(prevented, 1);
    assert.deepEqual(opened, [targetOf(CELL)]);
  });

  test('a source list has one link per citation, hostile titles as text', () => {
    const list = withFakeDocument(
      () => citationList([HOSTILE, CELL, HOSTILE], () => undefined, '/') as unknown as FakeElement
    );
    const links = list.all().filter(e => e.tagName === 'A');
    assert.equal(links.length, 2);
    assert.ok(list.textContent.includes('<script>alert("title")</script>'));
    assert.deepEqual(
      list.all().map(e => e.tagName).filter(t => !['DIV', 'SPAN', 'UL', 'LI', 'A'].includes(t)),
      []
    );
    assert.equal(withFakeDocument(() => citationList([], () => undefined, '/')), null);
  });
});

const e = (type: string, seq: number, fields: Record<string, unknown> = {}) =>
  event(type, seq, fields) as unknown as ConversationEvent;

describe('citations in frames and the transcript', () => {
  const result = {
    call_id: 'toolu_1',
    name: 'search_knowledge',
    ok: true,
    content: `[${CELL.label}]\nsensors.ipynb > Cleaning`,
    error: null,
    outputs: null,
    citations: [CELL, LINES]
  };

  test('the search call says what it searches for', () => {
    assert.equal(
      describeCall('search_knowledge', { query: 'where do we clean?' }),
      'Search your indexed files for "where do we clean?"'
    );
  });

  test('a tool_result with citations is accepted; a malformed citation is not', () => {
    assert.equal(parseFrame(JSON.stringify(event('tool_result', 3, result))).kind, 'event');
    for (const bad of [{ ...CELL, path: 7 }, { ...CELL, cell_index: -1 }, { ...CELL, label: '' }, 'x']) {
      const frame = event('tool_result', 3, { ...result, citations: [bad] });
      assert.equal(parseFrame(JSON.stringify(frame)).kind, 'invalid', JSON.stringify(bad));
    }
    const context = event('context', 2, {
      tokens: 9,
      budget: 100,
      items: [{ kind: 'knowledge', ref: LINES.label, tokens: 9, citation: { ...LINES, title: 5 } }]
    });
    assert.equal(parseFrame(JSON.stringify(context)).kind, 'invalid');
  });

  test('the call keeps its citations and the answer after it may link them', () => {
    const t = new Transcript();
    t.apply(e('run_started', 1, { task: 'agent', model: 'm', provider: 'p' }));
    t.apply(e('tool_call', 2, { call_id: 'toolu_1', name: 'search_knowledge', arguments: { query: 'q' }, risk: 'low', decision: 'auto' }));
    t.apply(e('tool_result', 3, result));
    t.apply(e('token', 4, { text: `In [${CELL.label}].` }));
    const call = t.blocks.find(b => b.kind === 'call');
    assert.ok(call?.kind === 'call' && call.result);
    assert.deepEqual(call.result.citations.map(c => c.label), [CELL.label, LINES.label]);
    const answer = t.blocks.find(b => b.kind === 'answer');
    assert.ok(answer?.kind === 'answer');
    assert.deepEqual(citedIn(answer.text, answer.citations).map(c => c.label), [CELL.label]);
  });

  test('knowledge passages sent as context are citations of the run (chat answers)', () => {
    const t = new Transcript();
    t.apply(e('run_started', 1, { task: 'chat', model: 'm', provider: 'p' }));
    t.apply(e('context', 2, {
      tokens: 9,
      budget: 100,
      items: [
        { kind: 'knowledge', ref: LINES.label, tokens: 9, citation: LINES },
        { kind: 'notebook', ref: 'a.ipynb', tokens: 3 }
      ]
    }));
    t.apply(e('token', 3, { text: `See ${LINES.label}` }));
    assert.deepEqual(t.citationsOf('run_1').map(c => c.path), ['lib/billing.py']);
    const answer = t.blocks.find(b => b.kind === 'answer');
    assert.ok(answer?.kind === 'answer' && answer.citations.length === 1);
  });

  test('a result without citations has none, and other runs are not mixed in', () => {
    const t = new Transcript();
    t.apply(e('run_started', 1, { task: 'agent', model: 'm', provider: 'p' }));
    t.apply(e('tool_result', 2, { ...result, citations: undefined }));
    assert.deepEqual(t.citationsOf('run_1'), []);
    assert.deepEqual(t.citationsOf('run_2'), []);
  });
});

describe('@ mentions from the knowledge index', () => {
  test('a search hit is a cell mention in a notebook, a file mention elsewhere', () => {
    const raw = {
      path: 'analysis/sensors.ipynb',
      kind: 'code_cell',
      cell_id: 'cell-4',
      cell_index: 4,
      line_start: 1,
      line_end: 6,
      title: 'Cleaning',
      score: 0.5,
      citation: CELL.label,
      text: 'sensors.ipynb > Cleaning\ndef drop_outliers(df): ...'
    };
    const hit = parseHit(raw)!;
    assert.deepEqual(hit.citation, { ...CELL, title: 'Cleaning' });
    const cell = knowledgeCandidate(hit.citation, hit.text);
    assert.equal(cell.token, '@analysis/sensors.ipynb#cell-4');
    assert.deepEqual(cell.mention, { kind: 'cell', path: 'analysis/sensors.ipynb', cell_id: 'cell-4' });
    assert.equal(cell.label, 'analysis/sensors.ipynb · cell 5'); // with its folder
    // A passage (one function) is mentioned as its lines, not as the whole file.
    const file = knowledgeCandidate(LINES, 'def to_cents(x):');
    assert.deepEqual(file.mention, { kind: 'file', path: 'lib/billing.py', lines: [6, 9] });
    assert.equal(file.token, '@lib/billing.py:6-9');
    assert.equal(file.label, 'lib/billing.py:6');
    const whole = knowledgeCandidate({ ...LINES, line_start: null, line_end: null }, '');
    assert.deepEqual(whole.mention, { kind: 'file', path: 'lib/billing.py' });
    assert.equal(whole.token, '@lib/billing.py');
    assert.equal(parseHit({ kind: 'x' }), null);
  });

  test('local matches come first and a file found both ways is offered once', () => {
    const local = [fileCandidate('lib/billing.py')];
    const wholeFile = knowledgeCandidate({ ...LINES, line_start: null, line_end: null }, '');
    const found = [wholeFile, knowledgeCandidate(LINES, ''), knowledgeCandidate(CELL, '')];
    const merged = mergeCandidates(local, found);
    assert.deepEqual(
      merged.map(c => c.token),
      ['@lib/billing.py', '@lib/billing.py:6-9', '@analysis/sensors.ipynb#cell-4']
    );
  });
});
