"""Each kind of plain rich output still renders from a sandboxed kernel (issue 13, Build 1:
"pandas HTML tables, matplotlib PNG/SVG, Markdown, LaTeX, images, and interactive plots
inside their frame"). The payload tests (test_output_isolation.py) cover tables, PNG and
IPython's SVG; this covers the rest, in a real lab on ``Python 3 (sandboxed)``, with a
screenshot."""

from __future__ import annotations

from typing import Any

import pytest
from browser_support import LabPage, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]

OUTPUT_TIMEOUT_MS = 90_000

CELLS = [
    (
        "setup",
        "from IPython.display import Image, Math, Latex, Markdown, HTML, display\n"
        "import io\n%matplotlib inline\nimport matplotlib.pyplot as plt\n"
        "from matplotlib_inline.backend_inline import set_matplotlib_formats",
    ),
    ("math", r"display(Math(r'\int_0^1 x^2\,dx = \frac{1}{3}'))"),
    ("latex", r"display(Latex(r'$\alpha + \beta = \gamma$'))"),
    (
        "markdown",
        "display(Markdown('## Results\\n\\n| model | score |\\n|---|---|\\n| a | 0.91 |\\n\\n"
        "*emphasis* and `code`'))",
    ),
    (
        "mpl-svg",
        "set_matplotlib_formats('svg')\n"
        "plt.figure(figsize=(3, 2)); plt.bar(['a', 'b'], [3, 5]); plt.title('svg'); plt.show()\n"
        "set_matplotlib_formats('png')",
    ),
    (
        "image",
        "buf = io.BytesIO()\nfig = plt.figure(figsize=(1, 1)); plt.plot([0, 1])\n"
        "fig.savefig(buf, format='png'); plt.close(fig)\n"
        "display(Image(data=buf.getvalue(), width=80))",
    ),
    # An interactive plot: an SVG chart whose points answer a click with their value,
    # the way plotly or bokeh figures (inline mode) respond inside their frame.
    (
        "plot",
        'display(HTML(\'<p id="v">click a point</p><svg width="200" height="80">\''
        ' + \'\'.join(f\'<circle id="p{i}" cx="{20 + 40 * i}" cy="{70 - 12 * y}" r="6"\''
        " f' fill=\"teal\"/>' for i, y in enumerate([1, 4, 2, 5]))"
        " + '</svg><script>document.querySelectorAll(\"circle\").forEach(c =>'"
        " ' c.addEventListener(\"click\", () =>'"
        ' \' document.getElementById("v").textContent = "value at " + c.id))</script>\'))',
    ),
]


def _cell(notebook: Any, cell_id: str) -> Any:
    return notebook.locator(".jp-Cell").nth([c for c, _ in CELLS].index(cell_id))


def test_each_kind_of_rich_output_renders_from_a_sandboxed_kernel(
    chat: LabPage, agent_lab: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    path = write_notebook(agent_lab.root_dir, "rich-kinds.ipynb", CELLS)
    notebook = chat.open_notebook(path)
    chat.run_command("notebook:run-all-cells")
    expect(notebook.locator(".jp-InputArea-prompt", has_text="[*]")).to_have_count(
        0, timeout=OUTPUT_TIMEOUT_MS
    )
    expect(notebook.locator(".jp-OutputArea-child")).to_have_count(
        len(CELLS) - 1, timeout=OUTPUT_TIMEOUT_MS
    )
    failed = notebook.locator('[data-mime-type*="error"], [data-mime-type*="stderr"]')
    assert failed.count() == 0, failed.all_inner_texts()

    # LaTeX is typeset by MathJax, in place.
    for cell_id in ("math", "latex"):
        latex = _cell(notebook, cell_id).locator(".jp-RenderedLatex")
        expect(latex.locator("mjx-container")).to_have_count(1, timeout=OUTPUT_TIMEOUT_MS)
        assert _cell(notebook, cell_id).locator("iframe").count() == 0

    # Markdown output: its heading, table and emphasis, in place (sanitized, untrusted).
    md = _cell(notebook, "markdown").locator(".jp-RenderedMarkdown")
    expect(md.locator("h2")).to_contain_text("Results")
    expect(md.locator("table td").nth(1)).to_have_text("0.91")
    expect(md.locator("em")).to_have_text("emphasis")

    # A matplotlib SVG figure and an Image display as images, not frames.
    svg = _cell(notebook, "mpl-svg").locator('img[src^="data:image/svg+xml"]')
    expect(svg).to_be_visible()
    image = _cell(notebook, "image").locator('img[src^="data:image/png"]')
    expect(image).to_be_visible()
    assert image.get_attribute("width") == "80"
    for cell_id in ("mpl-svg", "image", "markdown"):
        assert _cell(notebook, cell_id).locator("iframe").count() == 0

    # The interactive plot runs in its frame and answers a click there.
    frame = _cell(notebook, "plot").locator("iframe.aiide-FramedOutput-frame")
    expect(frame).to_have_count(1)
    assert frame.get_attribute("sandbox") == "allow-scripts"
    plot = _cell(notebook, "plot").frame_locator("iframe.aiide-FramedOutput-frame")
    inner = plot.frame_locator("#aiide-inner")
    inner.locator("#p3").click()
    expect(inner.locator("#v")).to_have_text("value at p3")

    _cell(notebook, "math").evaluate("el => el.scrollIntoView({block: 'start'})")
    chat.page.wait_for_timeout(300)
    screenshot(notebook, "output-isolation-rich-kinds")
