"""State a client makes the server keep is bounded: open notebooks per socket and per user."""

from __future__ import annotations

from typing import Any

import pytest

from .chat import connect

pytestmark = pytest.mark.xdist_group("agent")


@pytest.mark.agent_config(max_open_notebooks_per_socket=2, max_open_notebooks_per_user=3)
async def test_open_notebooks_are_capped_per_socket_and_per_user(jp_ws_fetch: Any) -> None:
    first = await connect(jp_ws_fetch)
    for i in range(2):
        await first.send(type="notebook_open", path=f"a{i}.ipynb")
    await first.send(type="notebook_open", path="a0.ipynb")  # already open: not counted again
    await first.send(type="notebook_open", id="over", path="a2.ipynb")
    refused = await first.until("error", reply_to="over")
    assert refused["code"] == "too_many_notebooks"
    assert "max_open_notebooks_per_socket" in refused["message"]

    second = await connect(jp_ws_fetch)  # the same user: 2 + 1 reaches the user's 3
    await second.send(type="notebook_open", path="b0.ipynb")
    await second.send(type="notebook_open", id="user", path="b1.ipynb")
    refused = await second.until("error", reply_to="user")
    assert refused["code"] == "too_many_notebooks"
    assert "max_open_notebooks_per_user" in refused["message"]

    await first.send(type="notebook_close", path="a0.ipynb")  # closing frees a place
    await first.send(type="ping", id="closed")
    await first.until("pong", reply_to="closed")
    await second.send(type="notebook_open", id="again", path="b1.ipynb")
    await second.send(type="ping", id="p")
    reply = await second.until("pong", reply_to="p")
    assert reply and not [m for m in second.received if m.get("reply_to") == "again"]
