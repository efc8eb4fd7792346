/**
 * Active output of a sandboxed kernel, run where it cannot reach the lab: an
 * `<iframe sandbox="allow-scripts">` without `allow-same-origin` has an opaque origin, so
 * its scripts see neither the lab's DOM nor its cookies, XSRF token or storage, and its
 * requests carry no credentials the lab's API accepts. A Content-Security-Policy inside
 * the frame forbids every network load (the sandboxed kernel has no network; its output
 * must not get one through the browser).
 *
 * A frame may still navigate itself (`location.href = ...`, `<meta http-equiv=refresh>`),
 * which no policy of its own can stop (Chromium has no `navigate-to`): that would send
 * whatever the output holds to any host. Only the `frame-src` of the document that holds
 * the frame governs that navigation, and the lab's own page must keep framing what
 * trusted notebooks embed. So the output frame sits inside a wrapper frame of its own
 * (opaque too), whose policy lets its one child be a `srcdoc` document and nothing else:
 * the navigation is refused before any request leaves. The output reports its height by
 * `postMessage` to the wrapper, which passes a number on; the page accepts only a number,
 * and only from that wrapper's window.
 */
import type { IRenderMime } from '@jupyterlab/rendermime';
import { Widget } from '@lumino/widgets';

import { bundleText } from './policy';

/** Inside the frame: scripts and styles inline, data inline, nothing from the network. */
export const FRAME_CSP = [
  "default-src 'none'",
  "script-src 'unsafe-inline' 'unsafe-eval' data: blob:",
  "style-src 'unsafe-inline' data:",
  'img-src data: blob:',
  'font-src data:',
  'media-src data: blob:',
  "connect-src 'none'",
  "form-action 'none'",
  "base-uri 'none'"
].join('; ');

/**
 * The wrapper's policy: its relay script, and a child that is a `srcdoc` document (an
 * opaque document's `'self'` admits `about:srcdoc` in Chromium, never a URL of a host).
 */
export const WRAPPER_CSP = [
  "default-src 'none'",
  "script-src 'unsafe-inline'",
  "style-src 'unsafe-inline'",
  "frame-src 'self'",
  "form-action 'none'",
  "base-uri 'none'"
].join('; ');

/** The frames' permissions: scripts, and nothing else (no same origin, popups, forms,
 * top navigation). */
export const FRAME_SANDBOX = 'allow-scripts';

/** A frame never grows past this (a hostile frame must not push the notebook away). */
export const MAX_FRAME_HEIGHT = 20_000;

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`);

/** Reports the content's height to the page on every change. */
const SIZE_REPORTER = `(function () {
  function send() {
    var box = document.getElementById('aiide-output');
    if (box) { parent.postMessage({ aiideFrameHeight: Math.ceil(box.getBoundingClientRect().height) }, '*'); }
  }
  addEventListener('DOMContentLoaded', function () {
    var box = document.getElementById('aiide-output');
    if (window.ResizeObserver && box) { new ResizeObserver(send).observe(box); }
    send();
  });
  addEventListener('load', send);
})();`;

export interface IFrameTheme {
  readonly color: string;
  readonly font: string;
}

/** The page's text colour and font, so a frame reads like the outputs around it. */
export function currentTheme(): IFrameTheme {
  const style = getComputedStyle(document.body);
  const pick = (name: string, fallback: string): string =>
    style.getPropertyValue(name).trim() || fallback;
  return {
    color: pick('--jp-content-font-color1', 'inherit'),
    font: pick('--jp-content-font-family', 'system-ui, sans-serif')
  };
}

/**
 * The frame's document for one output: its HTML, or its JavaScript (with `element`, the
 * node classic notebook scripts write into), or the text of another active type.
 */
export function frameDocument(
  mimeType: string,
  data: { readonly [key: string]: unknown },
  theme: IFrameTheme = { color: 'inherit', font: 'system-ui, sans-serif' }
): string {
  const css = `html,body{margin:0;padding:0;background:transparent;}
body{color:${theme.color.replace(/[;<>{}]/g, '')};font-family:${theme.font.replace(/[;<>{}]/g, '')};font-size:13px;}
#aiide-output{display:flow-root;}`;
  let body: string;
  if (mimeType === 'application/javascript' || mimeType === 'text/javascript') {
    const source = bundleText(data, mimeType).replace(/<\/(script)/gi, '<\\/$1');
    body = `<div id="aiide-output"></div><script>var element = document.getElementById('aiide-output');</script><script>${source}</script>`;
  } else if (mimeType === 'text/html' || 'text/html' in data) {
    body = `<div id="aiide-output">${bundleText(data, mimeType === 'text/html' ? mimeType : 'text/html')}</div>`;
  } else {
    body = `<div id="aiide-output"><pre>${escapeHtml(bundleText(data, 'text/plain'))}</pre></div>`;
  }
  return `<!DOCTYPE html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${FRAME_CSP}">
<style>${css}</style><script>${SIZE_REPORTER}</script></head><body>${body}</body></html>`;
}

/** In the wrapper: passes the output's height (a number, from its frame only) on. */
const HEIGHT_RELAY = `addEventListener('message', function (e) {
  var inner = document.getElementById('aiide-inner');
  var h = e.data && e.data.aiideFrameHeight;
  if (inner && e.source === inner.contentWindow && typeof h === 'number' && isFinite(h)) {
    parent.postMessage({ aiideFrameHeight: h }, '*');
  }
});`;

/** The wrapper document around an output's frame document (see the module comment). */
export function wrapperDocument(inner: string): string {
  return `<!DOCTYPE html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${WRAPPER_CSP}">
<style>html,body{margin:0;padding:0;background:transparent;overflow:hidden;}
iframe{display:block;border:0;width:100%;height:100vh;}</style>
<script>${HEIGHT_RELAY}</script></head><body><iframe id="aiide-inner" sandbox="${FRAME_SANDBOX}" referrerpolicy="no-referrer" title="output" srcdoc="${escapeHtml(inner)}"></iframe></body></html>`;
}

/** The wrappers on the page, by their window: whose height a message may set. */
const frames = new Map<Window, HTMLIFrameElement>();
let listening = false;

function onMessage(event: MessageEvent): void {
  const source = event.source as Window | null;
  const frame = source ? frames.get(source) : undefined;
  if (!frame) {
    return;
  }
  const height = (event.data as { aiideFrameHeight?: unknown } | null)?.aiideFrameHeight;
  if (typeof height === 'number' && Number.isFinite(height)) {
    frame.style.height = `${Math.min(Math.max(Math.ceil(height), 0), MAX_FRAME_HEIGHT)}px`;
  }
}

/** An output rendered in an isolated frame. */
export class FramedOutput extends Widget implements IRenderMime.IRenderer {
  constructor(mimeType: string) {
    super();
    this._mimeType = mimeType;
    this.addClass('aiide-FramedOutput');
    const iframe = document.createElement('iframe');
    iframe.setAttribute('sandbox', FRAME_SANDBOX);
    iframe.setAttribute('referrerpolicy', 'no-referrer');
    iframe.setAttribute('title', 'Output of the sandboxed kernel (isolated)');
    iframe.className = 'aiide-FramedOutput-frame';
    this._iframe = iframe;
    this.node.appendChild(iframe);
    if (!listening) {
      window.addEventListener('message', onMessage);
      listening = true;
    }
  }

  get iframe(): HTMLIFrameElement {
    return this._iframe;
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const output = frameDocument(this._mimeType, model.data, currentTheme());
    this._iframe.srcdoc = wrapperDocument(output);
    this._track();
  }

  protected override onAfterAttach(): void {
    this._track();
  }

  protected override onBeforeDetach(): void {
    this._untrack();
  }

  override dispose(): void {
    this._untrack();
    super.dispose();
  }

  /** The frame's window exists once it is in the document; it changes on reload. */
  private _track(): void {
    this._untrack();
    const win = this._iframe.contentWindow;
    if (win) {
      this._window = win;
      frames.set(win, this._iframe);
    }
  }

  private _untrack(): void {
    if (this._window) {
      frames.delete(this._window);
      this._window = null;
    }
  }

  private readonly _mimeType: string;
  private readonly _iframe: HTMLIFrameElement;
  private _window: Window | null = null;
}
