"""Issue 21, finding 6: every student keeps their own JupyterLab settings and workspaces.

The documented setup used to point every server's ``JUPYTER_CONFIG_DIR`` at the one course
config directory, which is also where JupyterLab keeps user settings and workspaces:
students reopened each other's notebooks and simultaneous saves failed. The course config
now goes on ``JUPYTER_CONFIG_PATH`` (docs/deployment.md), as in this real hub."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .harness import Hub

pytestmark = pytest.mark.xdist_group("hub")

WORKSPACE = "aiide-isolation"
SETTING = "@jupyterlab/apputils-extension:notification"


def _workspace(user: str) -> dict[str, object]:
    return {
        "data": {"layout-restorer:data": {"main": {"current": f"notebook:{user}-homework.ipynb"}}},
        "metadata": {"id": WORKSPACE},
    }


def _put(hub: Hub, user: str) -> list[int]:
    token = hub.login(user)
    status_ws, _ = hub.request(
        "PUT", hub.user_url(user, f"/lab/api/workspaces/{WORKSPACE}"), token, _workspace(user)
    )
    raw = json.dumps({"fetchNews": "false" if user == "alice" else "true"})
    status_set, _ = hub.request(
        "PUT", hub.user_url(user, f"/lab/api/settings/{SETTING}"), token, {"raw": raw}
    )
    return [status_ws, status_set]


def test_two_students_save_at_once_and_each_reads_back_only_their_own(hub: Hub) -> None:
    with ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(lambda u: _put(hub, u), ["alice", "bob"]))
    assert statuses == [[204, 204], [204, 204]], statuses  # no 500 from a shared folder

    for user in ("alice", "bob"):
        token = hub.login(user)
        status, ws = hub.request(
            "GET", hub.user_url(user, f"/lab/api/workspaces/{WORKSPACE}"), token
        )
        assert status == 200, ws
        assert ws["data"]["layout-restorer:data"]["main"]["current"] == (
            f"notebook:{user}-homework.ipynb"
        )
        status, setting = hub.request(
            "GET", hub.user_url(user, f"/lab/api/settings/{SETTING}"), token
        )
        assert status == 200, setting
        assert json.loads(setting["raw"])["fetchNews"] == ("false" if user == "alice" else "true")

    # Each student's files are in their own home, none in the shared course config folder.
    for user in ("alice", "bob"):
        lab = hub.dir / "home" / user / ".jupyter" / "lab"
        assert list((lab / "workspaces").glob(f"{WORKSPACE}*")), sorted(lab.rglob("*"))
        assert list((lab / "user-settings").rglob("notification.jupyterlab-settings"))
    shared = Path(hub.dir / "singleuser")
    assert not (shared / "lab").exists(), sorted(shared.rglob("*"))
