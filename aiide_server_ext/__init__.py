"""aiide Jupyter server extension: gateway, agent and knowledge endpoints."""

from __future__ import annotations

from typing import Any

from ._version import __version__


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import AiideExtension

    return [{"module": "aiide_server_ext", "app": AiideExtension}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "aiide"}]


__all__ = ["__version__"]
