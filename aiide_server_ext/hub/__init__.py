"""aiide under JupyterHub: the key broker service, course policies, hub glue.

In a single-user server enable this as a second server extension
(``c.ServerApp.jpserver_extensions = {"aiide_server_ext": True, "aiide_server_ext.hub":
True}``): it asks the broker for the student's course policy before each chat, agent
step or completion, and serves ``/aiide/api/course/...`` for instructors.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "aiide_server_ext.hub"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from .singleuser.part import load

    load(serverapp)
