/**
 * The chat box's `@` popup in a DOM: mention search results are answers to one question
 * (this `@word`, in this focused box). Results that come back once the question is gone —
 * the box lost focus, or its text at the caret changed without typing — are dropped
 * instead of opening the popup over a box nobody is typing in.
 */
import { document, window } from './dom';

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import { Composer } from '../src/chat/composer';
import { fileCandidate, type IMentionCandidate } from '../src/chat/mentions';

after(() => window.happyDOM.close());

/** A mention search that answers only when the test says so. */
class Search {
  readonly asked: string[] = [];

  candidates = (query: string): Promise<IMentionCandidate[]> => {
    this.asked.push(query);
    return new Promise(resolve => this._pending.push(resolve));
  };

  /** Answers the oldest pending search and lets the box handle the answer. */
  async answer(found: IMentionCandidate[]): Promise<void> {
    const next = this._pending.shift();
    assert.ok(next, 'no search is pending');
    next(found);
    // The box reads the answer in a continuation: let it run.
    await new Promise(resolve => setTimeout(resolve, 0));
  }

  private readonly _pending: ((found: IMentionCandidate[]) => void)[] = [];
}

const FOUND = [fileCandidate('data/outliers.csv')];

interface ISetup {
  composer: Composer;
  input: HTMLTextAreaElement;
  popup: HTMLElement;
  search: Search;
  /** What was sent, and how often Enter was refused while busy. */
  sent: string[];
  blocked: string[];
}

function setup(): ISetup {
  const search = new Search();
  const sent: string[] = [];
  const blocked: string[] = [];
  const composer = new Composer({
    enterToSend: () => true,
    candidates: search.candidates,
    send: text => void sent.push(text),
    stop: () => undefined,
    blocked: () => void blocked.push(input?.value ?? '')
  });
  document.body.append(composer.node);
  const input = composer.node.querySelector<HTMLTextAreaElement>('.aiide-Composer-input');
  const popup = composer.node.querySelector<HTMLElement>('.aiide-Popup');
  assert.ok(input && popup);
  return { composer, input, popup, search, sent, blocked };
}

function press(input: HTMLTextAreaElement, key: string): void {
  input.dispatchEvent(new KeyboardEvent('keydown', { key, bubbles: true, cancelable: true }));
}

/** What typing does: focus, the new text with the caret after the last key, an `input` event. */
function type(input: HTMLTextAreaElement, text: string, caret = text.length): void {
  input.focus();
  input.value = text;
  input.setSelectionRange(caret, caret);
  input.dispatchEvent(new InputEvent('input', { bubbles: true }));
}

function labels(popup: HTMLElement): string[] {
  return [...popup.querySelectorAll('.aiide-Popup-label')].map(el => el.textContent ?? '');
}

describe('chat box @ popup', () => {
  test('results for the @word being typed in the focused box open the popup', async () => {
    const { composer, input, popup, search } = setup();
    type(input, 'look at @outl');
    assert.deepEqual(search.asked, ['outl']);
    await search.answer(FOUND);
    assert.equal(popup.hidden, false);
    assert.deepEqual(labels(popup), ['outliers.csv']);
    assert.equal(input.getAttribute('aria-expanded'), 'true');
    composer.dispose();
  });

  test('results arriving after the box lost focus do not open the popup', async () => {
    const { composer, input, popup, search } = setup();
    const elsewhere = document.createElement('button');
    document.body.append(elsewhere);
    type(input, 'look at @outl');
    elsewhere.focus(); // the user clicks away while the search runs
    assert.notEqual(document.activeElement, input as unknown);
    await search.answer(FOUND);
    assert.equal(popup.hidden, true, 'the popup opened on a box without focus');
    assert.deepEqual(labels(popup), []);
    assert.equal(input.getAttribute('aria-expanded'), 'false');
    composer.dispose();
    elsewhere.remove();
  });

  test('results for an @word replaced without typing do not open the popup', async () => {
    const { composer, input, popup, search } = setup();
    type(input, 'look at @outl');
    // The text is replaced without typing (a prompt put into the box) while the search runs.
    composer.setText('Explain this error');
    await search.answer(FOUND);
    assert.equal(popup.hidden, true, 'the popup opened for a word that is gone');
    composer.dispose();
  });

  test('results for an @word the caret has left do not open the popup', async () => {
    const { composer, input, popup, search } = setup();
    // The caret moves away from the @word (a click further on in the text): same text.
    type(input, '@outl and more', 5);
    assert.deepEqual(search.asked, ['outl']);
    input.setSelectionRange(14, 14);
    await search.answer(FOUND);
    assert.equal(popup.hidden, true, 'the popup opened for the word the caret left');
    composer.dispose();
  });
});

describe('chat box @ pick', () => {
  test('Enter on results a key older replaces the whole @word typed since', async () => {
    const { composer, input, popup, search } = setup();
    type(input, 'look at @ou');
    await search.answer(FOUND);
    assert.equal(popup.hidden, false);
    type(input, 'look at @out'); // one more key: its search has not answered yet
    press(input, 'Enter');
    assert.equal(input.value, 'look at @data/outliers.csv ', 'the key typed since was left after it');
    assert.equal(input.selectionStart, input.value.length);
    composer.dispose();
  });
});

describe('chat box keys', () => {
  test('Enter on a fully typed /learn sends it; Enter on /lea completes it', () => {
    const { composer, input, sent } = setup();
    type(input, '/lea');
    press(input, 'Enter');
    assert.equal(input.value, '/learn ');
    assert.deepEqual(sent, []);
    type(input, '/learn');
    press(input, 'Enter');
    assert.deepEqual(sent, ['/learn']);
    assert.equal(input.value, '');
    // A command that needs its text is completed, not sent bare.
    type(input, '/generate');
    press(input, 'Enter');
    assert.equal(input.value, '/generate ');
    assert.deepEqual(sent, ['/learn']);
    composer.dispose();
  });

  test('Enter while an answer comes keeps the text and says so', () => {
    const { composer, input, sent, blocked } = setup();
    composer.setBusy(true);
    type(input, 'and then?');
    press(input, 'Enter');
    assert.deepEqual(sent, []);
    assert.deepEqual(blocked, ['and then?']);
    assert.equal(input.value, 'and then?');
    composer.dispose();
  });

  test('a note goes when the text changes; the status line is not beside Send', () => {
    const { composer, input } = setup();
    const hint = composer.node.querySelector<HTMLElement>('.aiide-Composer-hint');
    assert.ok(hint);
    assert.equal(hint.closest('.aiide-Composer-bar'), null);
    composer.setNote('Unknown command /x.');
    assert.equal(hint.hidden, false);
    type(input, '/x2');
    assert.equal(hint.hidden, true);
    assert.equal(hint.textContent, '');
    composer.dispose();
  });

  test('↑/↓ walk the sent messages from the first / last line, and ↓ brings back the draft', () => {
    const { composer, input, sent } = setup();
    for (const text of ['first question', 'second\nquestion']) {
      type(input, text);
      press(input, 'Enter');
    }
    assert.deepEqual(sent, ['first question', 'second\nquestion']);
    type(input, 'a draft');
    press(input, 'ArrowUp');
    assert.equal(input.value, 'second\nquestion');
    press(input, 'ArrowUp'); // the entry as recalled: ↑ goes on, whatever the caret's line
    assert.equal(input.value, 'first question');
    press(input, 'ArrowUp'); // the oldest: stays
    assert.equal(input.value, 'first question');
    press(input, 'ArrowDown');
    press(input, 'ArrowDown');
    assert.equal(input.value, 'a draft');
    // Changed and with the caret on its second line, ↑ moves the caret, not the history.
    type(input, 'line one\nline two');
    press(input, 'ArrowUp');
    assert.equal(input.value, 'line one\nline two');
    composer.dispose();
  });
});
