"""JupyterLab loads with the aiide extension, and tells a user without a model key how to add one.

Runs a real ``jupyter lab`` (with the real aiide server extension) and a headless Chromium.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import widen_sidebar

pytestmark = pytest.mark.browser

LOAD_TIMEOUT_MS = 60_000
# JupyterLab closes ordinary toasts after 5 s; ours must outlive that.
TOAST_AUTOCLOSE_MS = 5_000
TOAST_MAX_CHARS = 140


@pytest.fixture(scope="module")
def server_status(lab_server: Any) -> dict[str, Any]:
    """What the server itself answers, to compare the UI against."""
    status: dict[str, Any] = lab_server.get_json("aiide/api/status")
    return status


@pytest.fixture(scope="module")
def lab_page(lab_server: Any, browser_context: Any, artifacts_dir: Path) -> Iterator[Any]:
    """JupyterLab opened once for the module; console output saved next to the screenshot."""
    names = [ext["name"] for ext in lab_server.page_config().get("federated_extensions", [])]
    if "aiide" not in names:
        pytest.fail(
            f"the aiide labextension is not installed for this jupyter lab (found {names}). "
            "Build it: cd labextension && jlpm install && jlpm build:prod; then pip install -e . "
            "or link aiide_server_ext/labextension to "
            "<sys.prefix>/share/jupyter/labextensions/aiide",
            pytrace=False,
        )
    page = browser_context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"[{msg.type}] {msg.text}"))
    page.on("pageerror", lambda err: console.append(f"[pageerror] {err}"))
    page.goto(lab_server.lab_url(), wait_until="domcontentloaded", timeout=LOAD_TIMEOUT_MS)
    page.locator("#jp-main-statusbar").wait_for(timeout=LOAD_TIMEOUT_MS)
    try:
        yield page
    finally:
        (artifacts_dir / "lab_loads.console.log").write_text("\n".join(console) + "\n")
        page.close()


def test_server_reports_no_model_without_a_key(server_status: dict[str, Any]) -> None:
    assert server_status["model"]["configured"] is False
    assert "ANTHROPIC_API_KEY" in server_status["model"]["help"]


def test_status_item_shows_the_sandbox_state(lab_page: Any, server_status: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    item = lab_page.locator("#aiide-status")
    expect(item).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    expect(item).not_to_have_attribute("data-aiide-status", "loading", timeout=LOAD_TIMEOUT_MS)

    sandbox = server_status["sandbox"]
    backend = sandbox["backends"].get(sandbox["default_backend"], {})
    # Words, not a backend's program name ("aiide: bwrap" said nothing to a user).
    expected = "Sandbox on" if backend.get("available") else "No sandbox"
    expect(item).to_have_text(re.compile(rf"^{expected}\b"))
    expect(item).not_to_contain_text("bwrap")
    expect(item).to_have_attribute("title", re.compile(r"no network and no access to files"))
    expect(item).to_have_attribute("title", re.compile(r"Sandbox: (bubblewrap|Docker)"))


def test_missing_model_key_shows_a_persistent_warning(
    lab_page: Any, server_status: dict[str, Any], artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    item = lab_page.locator("#aiide-status")
    expect(item).to_have_attribute(
        "data-aiide-status", re.compile(r"(^|\s)no-model(\s|$)"), timeout=LOAD_TIMEOUT_MS
    )
    expect(item).to_contain_text("no model")

    toast = lab_page.locator(".jp-Notification-Toast-warning", has_text="ANTHROPIC_API_KEY")
    expect(toast).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    lab_page.wait_for_timeout(TOAST_AUTOCLOSE_MS + 1_000)
    expect(toast).to_be_visible()
    expect(toast).to_have_count(1)
    lab_page.screenshot(path=str(artifacts_dir / "lab_loads.png"))

    help_text = server_status["model"]["help"]
    if len(help_text) > TOAST_MAX_CHARS:
        # The toast shows 140 characters; "Details" shows the server's text exactly.
        toast.get_by_role("button", name="Details").click()
        dialog = lab_page.locator(".jp-Dialog")
        expect(dialog).to_be_visible()
        expect(dialog.locator(".jp-Dialog-body")).to_have_text(help_text)
        lab_page.screenshot(path=str(artifacts_dir / "lab_loads_details.png"))
        dialog.get_by_role("button", name="Ok").click()
        expect(dialog).to_have_count(0)
        expect(toast).to_be_visible()


def test_chat_without_a_model_shows_a_setup_card(lab_page: Any, screenshot: Any) -> None:
    from playwright.sync_api import expect

    lab_page.wait_for_function("() => window.jupyterapp?.commands.hasCommand('aiide:open-chat')")
    lab_page.evaluate(
        "() => window.jupyterapp.commands.execute('aiide:open-chat').then(() => null)"
    )
    chat = lab_page.locator("#aiide-chat")
    widen_sidebar(lab_page)
    card = chat.locator(".aiide-Setup")
    expect(card).to_be_visible(timeout=LOAD_TIMEOUT_MS)
    expect(card).to_contain_text("Connect a model to start")
    expect(card).to_contain_text("ANTHROPIC_API_KEY")
    expect(card.get_by_role("button", name="Check again")).to_be_visible()
    expect(chat.locator(".aiide-Composer-input")).to_be_editable()
    expect(lab_page.locator("#aiide-assistant-status")).to_contain_text("no model")
    screenshot(chat, "chat-setup-card")


def test_the_launcher_tells_the_sandboxed_kernel_apart(lab_page: Any) -> None:
    """Two Python cards with the same logo said nothing about which one is safe: the
    sandboxed kernel's card carries a shield."""
    lab_page.evaluate("() => window.jupyterapp.commands.execute('launcher:create')")
    sandboxed = lab_page.locator(".jp-LauncherCard[title='Python 3 (sandboxed)'] img").first
    sandboxed.wait_for(state="attached", timeout=LOAD_TIMEOUT_MS)
    plain = lab_page.locator(".jp-LauncherCard[title^='Python 3 (ipykernel)'] img").first
    src, plain_src = sandboxed.get_attribute("src"), plain.get_attribute("src")
    assert src and plain_src and "aiide-python" in src
    origin = lab_page.evaluate("() => location.origin")
    logo = lab_page.request.get(origin + src).text()
    assert 'id="aiide-shield"' in logo
    assert lab_page.request.get(origin + plain_src).text() != logo
