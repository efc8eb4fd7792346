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

function setup(): { composer: Composer; input: HTMLTextAreaElement; popup: HTMLElement; search: Search } {
  const search = new Search();
  const composer = new Composer({
    enterToSend: () => true,
    candidates: search.candidates,
    send: () => undefined,
    stop: () => undefined
  });
  document.body.append(composer.node);
  const input = composer.node.querySelector<HTMLTextAreaElement>('.aiide-Composer-input');
  const popup = composer.node.querySelector<HTMLElement>('.aiide-Popup');
  assert.ok(input && popup);
  return { composer, input, popup, search };
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
