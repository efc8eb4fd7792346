"""Asking about a plot in the browser: the plot the user sees in the notebook reaches the
model as an image, and the chat's "Context sent" line lists it."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from browser_support import LabPage, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("aiide-agent-browser")]


def plot_png() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(14, 7), dpi=100)
    ax.plot([3, 1, 4, 1, 5, 9, 2, 6])
    ax.set_title("monthly sales")  # no axis labels: what the question is about
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return base64.b64encode(out.getvalue()).decode("ascii")


def test_a_question_about_a_plot_sends_the_plot(
    chat: LabPage, agent_lab: Any, fake_model: Any, screenshot: Any
) -> None:
    from PIL import Image
    from playwright.sync_api import expect

    path = write_notebook(agent_lab.root_dir, "plot.ipynb", [("c1", "df.plot()")])
    nb = json.loads((agent_lab.root_dir / path).read_text())
    nb["cells"][0]["outputs"] = [
        {"output_type": "display_data", "metadata": {}, "data": {"image/png": plot_png()}}
    ]
    nb["cells"][0]["execution_count"] = 1
    (agent_lab.root_dir / path).write_text(json.dumps(nb))
    chat.open_notebook(path, kernel=False)
    fake_model.script({"text": "The axes have no labels, and the y axis starts at 1."})
    chat.ask("What's wrong with this plot?")
    chat.finished()
    body = fake_model.requests()[-1]["body"]
    blocks = body["messages"][0]["content"]
    (image,) = [b for b in blocks if b["type"] == "image"]
    picture = Image.open(io.BytesIO(base64.b64decode(image["source"]["data"])))
    assert picture.size == (1024, 512)  # 1400x700 resized to the max edge
    context = chat.chat.locator(".aiide-Context").last
    context.locator("summary").click()
    listed = context.locator("li", has_text="image")
    expect(listed).to_contain_text(f"{path}#c1")
    expect(chat.answers().last).to_contain_text("no labels")
    screenshot(chat.page, "chat-image-question")
