"""The model sees what the user sees: the image outputs of the cells in context go to
models that accept images (Anthropic image blocks, OpenAI-compatible ``image_url`` data
URLs), resized to the maximum edge, counted against the budget, nearest the cursor first;
a corrupt image output is a note in the context, never an error."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeAnthropic, FakeOpenAI, Reply, ToolUse

from aiide_server_ext.agent import images
from aiide_server_ext.agent.calibration import request_chars
from aiide_server_ext.agent.providers.openai_compat import to_openai_messages

from .chat import connect

pytestmark = pytest.mark.xdist_group("agent")

Image = pytest.importorskip("PIL.Image")


def plot_png(width_in: float = 16, height_in: float = 12, dpi: int = 100) -> str:
    """A real matplotlib figure (Agg), as a notebook stores it: base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width_in, height_in), dpi=dpi)
    ax.plot([1, 3, 2, 5, 4])
    ax.set_title("sales per month")
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return base64.b64encode(out.getvalue()).decode("ascii")


def noise_png(size: int = 1500) -> str:
    """A large image that does not compress much."""
    import os

    image = Image.frombytes("RGB", (size, size), os.urandom(size * size * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode("ascii")


def write_notebook(root: Path, cells: list[tuple[str, str, dict[str, Any] | None]]) -> None:
    """Code cells (id, source, image output data or None)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    for cid, source, data in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.id = cid
        if data is not None:
            cell.outputs = [nbformat.v4.new_output("display_data", data=data)]
        nb.cells.append(cell)
    nbformat.write(nb, str(root / "nb.ipynb"))


async def ask(
    jp_ws_fetch: Any,
    fake: FakeAnthropic | FakeOpenAI,
    text: str = "What's wrong with this plot?",
    cell_id: str | None = None,
    **chat: Any,
) -> dict[str, Any]:
    fake.push(Reply(text="The y axis has no label."))
    client = await connect(jp_ws_fetch)
    context: dict[str, Any] = {"notebook": "nb.ipynb"}
    if cell_id:
        context["cell_id"] = cell_id
    await client.send(type="chat", text=text, task="chat", context=context, **chat)
    finished = await client.until("run_finished")
    assert finished["status"] == "completed", finished
    (event,) = client.of("context")
    return event


def first_user_blocks(fake: FakeAnthropic, index: int = -1) -> list[dict[str, Any]]:
    message = fake.requests[index].body["messages"][0]
    assert message["role"] == "user"
    return list(message["content"])


def decoded(data: str) -> Any:
    return Image.open(io.BytesIO(base64.b64decode(data)))


def image_items(context: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in context["items"] if i["kind"] == "image"]


async def test_a_plot_goes_to_claude_as_an_image_resized_to_the_max_edge(
    jp_ws_fetch: Any, jp_root_dir: Path, fake_anthropic: FakeAnthropic
) -> None:
    write_notebook(
        jp_root_dir,
        [("c1", "import pandas as pd", None), ("c2", "df.plot()", {"image/png": plot_png()})],
    )
    context = await ask(jp_ws_fetch, fake_anthropic)
    blocks = first_user_blocks(fake_anthropic)
    (image,) = [b for b in blocks if b["type"] == "image"]
    assert image["source"]["type"] == "base64"
    assert image["source"]["media_type"] == "image/png"
    picture = decoded(image["source"]["data"])
    assert picture.format == "PNG"
    assert max(picture.size) == 1024  # 1600x1200 resized to the max edge
    assert picture.size == (1024, 768)
    # The model knows which cell it is, and the question comes after the image.
    label = blocks[blocks.index(image) - 1]
    assert label["type"] == "text" and 'ref="nb.ipynb#c2"' in label["text"]
    assert blocks[-1] == {"type": "text", "text": "What's wrong with this plot?"}
    (item,) = image_items(context)
    assert item == {"kind": "image", "ref": "nb.ipynb#c2", "tokens": 1024 * 768 // 750 + 1}
    assert context["tokens"] <= context["budget"]


async def test_the_image_is_in_every_step_of_the_run_and_not_kept_after_it(
    jp_ws_fetch: Any, jp_serverapp: Any, jp_root_dir: Path, fake_anthropic: FakeAnthropic
) -> None:
    write_notebook(jp_root_dir, [("c1", "df.plot()", {"image/png": plot_png(4, 3)})])
    fake_anthropic.push(
        Reply(tools=[ToolUse("list_cells", {"path": "nb.ipynb"})]), Reply(text="Fixed.")
    )
    client = await connect(jp_ws_fetch)
    await client.send(type="chat", text="Fix the plot", context={"notebook": "nb.ipynb"})
    finished = await client.until("run_finished")
    assert finished["status"] == "completed", finished
    first, second = (first_user_blocks(fake_anthropic, i) for i in (0, 1))
    assert [b for b in first if b["type"] == "image"] == [b for b in second if b["type"] == "image"]
    assert decoded(next(b for b in first if b["type"] == "image")["source"]["data"]).size == (
        400,
        300,
    )
    store = jp_serverapp.web_app.settings["aiide_agent"].store
    store.flush()
    stored = store.run(finished["run_id"])
    assert stored["state"] == "completed" and stored["context_images"] == []


@pytest.mark.agent_config(
    models=[
        {
            "name": "local",
            "provider": "local",
            "model": "llava-test",
            "capabilities": ["chat", "tools"],
            "vision": True,
        }
    ]
)
async def test_an_openai_compatible_vision_model_gets_an_image_url(
    jp_ws_fetch: Any, jp_root_dir: Path, fake_openai: FakeOpenAI
) -> None:
    write_notebook(jp_root_dir, [("c1", "df.plot()", {"image/png": plot_png()})])
    context = await ask(jp_ws_fetch, fake_openai)
    messages = fake_openai.requests[-1].body["messages"]
    (user,) = [m for m in messages if m["role"] == "user"]
    parts = user["content"]
    assert isinstance(parts, list)
    (url,) = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    assert decoded(url[len(prefix) :]).size == (1024, 768)
    assert parts[-1] == {"type": "text", "text": "What's wrong with this plot?"}
    assert [i["ref"] for i in image_items(context)] == ["nb.ipynb#c1"]


@pytest.mark.agent_config(
    models=[{"name": "local", "provider": "local", "model": "llama-test", "capabilities": ["chat"]}]
)
async def test_a_model_without_vision_gets_no_image_and_the_context_says_so(
    jp_ws_fetch: Any, jp_root_dir: Path, fake_openai: FakeOpenAI
) -> None:
    write_notebook(jp_root_dir, [("c1", "df.plot()", {"image/png": plot_png()})])
    context = await ask(jp_ws_fetch, fake_openai)
    (user,) = [m for m in fake_openai.requests[-1].body["messages"] if m["role"] == "user"]
    assert isinstance(user["content"], str)  # text only: no image parts
    assert "base64" not in user["content"]
    assert "not sent: the model does not accept images" in user["content"]
    (item,) = image_items(context)
    assert item["tokens"] == 0 and item["note"] == "the model does not accept images"


async def test_a_corrupt_image_output_is_skipped_with_a_note(
    jp_ws_fetch: Any, jp_root_dir: Path, fake_anthropic: FakeAnthropic
) -> None:
    write_notebook(
        jp_root_dir,
        [
            ("bad64", "a()", {"image/png": "this is not base64 at all!"}),
            ("text", "b()", {"image/png": base64.b64encode(b"just some text").decode()}),
            ("huge", "c()", {"image/png": "A" * 50_000_000}),
            ("jpeg", "d()", {"image/jpeg": plot_png(2, 2)}),  # a PNG that says it is a JPEG
            ("good", "e()", {"image/png": plot_png(4, 3)}),
        ],
    )
    context = await ask(jp_ws_fetch, fake_anthropic, cell_id="good")
    blocks = first_user_blocks(fake_anthropic)
    (image,) = [b for b in blocks if b["type"] == "image"]
    assert decoded(image["source"]["data"]).size == (400, 300)
    notes = {i["ref"].split("#")[1]: i.get("note", "") for i in image_items(context)}
    assert notes["good"] == ""
    assert notes["bad64"] == "not valid base64"
    assert notes["text"].startswith("not a valid PNG image")
    assert notes["huge"].startswith("too large")
    assert notes["jpeg"].startswith("not a valid JPEG image")
    prompt = blocks[0]["text"]
    assert "[image output 0 of nb.ipynb#bad64 not sent: not valid base64]" in prompt
    assert "AAAAAAAAAAAAAAAA" not in str(fake_anthropic.requests[-1].body)


@pytest.mark.agent_config(ContextBuilder={"budget": 6000, "max_images": 4})
async def test_only_as_many_images_as_fit_the_budget_are_sent(
    jp_ws_fetch: Any, jp_root_dir: Path, fake_anthropic: FakeAnthropic
) -> None:
    noise = noise_png(1500)  # 1024x1024 after resizing: 1,399 tokens each
    write_notebook(jp_root_dir, [(f"c{i}", f"plot({i})", {"image/png": noise}) for i in range(6)])
    context = await ask(jp_ws_fetch, fake_anthropic, cell_id="c5")
    sent = [b for b in first_user_blocks(fake_anthropic) if b["type"] == "image"]
    # Half the budget (3,000 tokens) is for images: two fit.
    assert len(sent) == 2
    for block in sent:
        assert decoded(block["source"]["data"]).size == (1024, 1024)
    items = image_items(context)
    assert [i["ref"] for i in items if i["tokens"]] == ["nb.ipynb#c5", "nb.ipynb#c4"]  # nearest
    assert sum(i["tokens"] for i in items) <= 3000
    assert {i.get("note") for i in items if not i["tokens"]} == {"over the context budget"}
    assert context["tokens"] <= context["budget"]


@pytest.mark.agent_config(ContextBuilder={"max_images": 1})
async def test_at_most_max_images_are_sent_nearest_the_cursor_first(
    jp_ws_fetch: Any, jp_root_dir: Path, fake_anthropic: FakeAnthropic
) -> None:
    png = plot_png(2, 2)
    write_notebook(jp_root_dir, [(f"c{i}", f"plot({i})", {"image/png": png}) for i in range(4)])
    context = await ask(jp_ws_fetch, fake_anthropic, cell_id="c1")
    assert len([b for b in first_user_blocks(fake_anthropic) if b["type"] == "image"]) == 1
    items = image_items(context)
    assert [i["ref"] for i in items if i["tokens"]] == ["nb.ipynb#c1"]
    assert {i.get("note") for i in items if not i["tokens"]} == {"more than max_images (1)"}


def svg_plot() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(16, 8))
    ax.plot([1, 2, 3])
    out = io.StringIO()
    fig.savefig(out, format="svg")
    plt.close(fig)
    return out.getvalue()


def test_an_svg_output_is_rasterised_within_the_max_edge() -> None:
    pytest.importorskip("cairosvg")
    candidate = images.Candidate("c1", 0, "image/svg+xml", svg_plot())
    prepared = images.prepare(candidate, max_edge=800, max_input_bytes=10**7, max_svg_chars=100)
    assert prepared.media_type == "image/png"
    assert decoded(prepared.data).size == (800, 400) == (prepared.width, prepared.height)


def test_an_svg_never_loads_files_or_allocates_its_claimed_size(tmp_path: Path) -> None:
    pytest.importorskip("cairosvg")
    red = tmp_path / "red.png"
    Image.new("RGB", (100, 100), (255, 0, 0)).save(red)
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="100000" height="100000"><image width="100000" height="100000" '
        f'xlink:href="file://{red}"/></svg>'
    )
    candidate = images.Candidate("c1", 0, "image/svg+xml", svg)
    prepared = images.prepare(candidate, max_edge=256, max_input_bytes=10**7, max_svg_chars=100)
    picture = decoded(prepared.data).convert("RGBA")
    assert picture.size == (256, 256)
    assert picture.getpixel((128, 128)) != (255, 0, 0, 255)  # the file was not read


def test_a_decompression_bomb_is_refused_before_decoding() -> None:
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, "PNG")  # 48 kB, 400 million pixels
    candidate = images.Candidate("c1", 0, "image/png", base64.b64encode(out.getvalue()).decode())
    with pytest.raises(images.Skipped, match="too many pixels"):
        images.prepare(candidate, max_edge=1024, max_input_bytes=10**7, max_svg_chars=100)


def prepared_plot() -> images.Prepared:
    """A small plot (4 x 3 inches) of cell c1, prepared as the context builder would."""
    return images.prepare(
        images.Candidate("c1", 0, "image/png", plot_png(4, 3)),
        max_edge=1024,
        max_input_bytes=10**7,
        max_svg_chars=100,
    )


def test_a_fallback_without_vision_gets_a_note_and_calibration_ignores_base64() -> None:
    png = prepared_plot()
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "q"}, images.block(png)]},
    ]
    (stripped,) = images.without_images(messages)
    assert all(b["type"] == "text" for b in stripped["content"])
    (openai,) = to_openai_messages("", messages)
    assert openai["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    # 400x300 is 160 tokens: the request counts as that many estimated tokens, not base64.
    assert request_chars("", messages, []) < 200 * 4


def test_malformed_outputs_have_no_images() -> None:
    cell: dict[str, Any] = {"id": "c1", "outputs": "not a list"}
    assert images.candidates(cell) == []
    cell["outputs"] = [
        "not a dict",
        {"output_type": "display_data", "data": ["image/png"]},
        {"output_type": "stream", "text": "x"},
        {"output_type": "execute_result", "data": {"image/png": 42}},
    ]
    (only,) = images.candidates(cell)
    assert only.index == 3
    with pytest.raises(images.Skipped, match="not a string"):
        images.prepare(only, max_edge=1024, max_input_bytes=10**7, max_svg_chars=100)


PLOT_CELL = (
    "import matplotlib.pyplot as plt\n"
    "plt.figure(figsize=(16, 8), dpi=100)\n"
    "plt.plot([1, 3, 2])\n"
    "plt.show()"
)


async def test_a_plot_drawn_by_a_cell_the_agent_runs_is_in_its_tool_result(
    jp_ws_fetch: Any, jp_root_dir: Path, fake_anthropic: FakeAnthropic
) -> None:
    write_notebook(jp_root_dir, [("c1", PLOT_CELL, None)])
    fake_anthropic.push(
        Reply(tools=[ToolUse("run_cell", {"path": "nb.ipynb", "cell_id": "c1"}, id="toolu_plot")]),
        Reply(text="The line goes up, then down."),
    )
    client = await connect(jp_ws_fetch)
    await client.send(
        type="chat", text="Run the plot and describe it", context={"notebook": "nb.ipynb"}
    )
    ask = await client.until("approval_required", name="run_cell")
    await client.decide(ask)
    ran = await client.until("tool_result", call_id="toolu_plot", timeout=120)
    assert ran["ok"], ran
    finished = await client.until("run_finished", timeout=60)
    assert finished["status"] == "completed", finished
    messages = fake_anthropic.requests[1].body["messages"]
    (result,) = [
        b
        for m in messages
        if m["role"] == "user"
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    assert isinstance(result["content"], list)
    assert result["content"][0]["type"] == "text" and "ran" in result["content"][0]["text"]
    (image,) = [b for b in result["content"] if b["type"] == "image"]
    width, height = decoded(image["source"]["data"]).size
    assert width == 1024 and height < 600  # 1600x800 (the inline backend trims it a little)
    assert any('ref="nb.ipynb#c1"' in b.get("text", "") for b in result["content"])


def test_an_openai_compatible_model_gets_a_tool_results_plot_as_a_user_image() -> None:
    png = prepared_plot()
    label = {"type": "text", "text": '<image ref="nb.ipynb#c1" output="0" size="400x300"/>'}
    result = {
        "type": "tool_result",
        "tool_use_id": "call_1",
        "content": [{"type": "text", "text": "cell c1 ran"}, label, images.block(png)],
    }
    tool, user = to_openai_messages("", [{"role": "user", "content": [result]}])
    assert tool == {"role": "tool", "tool_call_id": "call_1", "content": "cell c1 ran"}
    assert user["role"] == "user"
    assert [p["type"] for p in user["content"]] == ["text", "image_url"]
    (stripped,) = images.without_images([{"role": "user", "content": [result]}])
    assert all(b["type"] == "text" for b in stripped["content"][0]["content"])
