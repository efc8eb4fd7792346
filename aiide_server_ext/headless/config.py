"""Settings of headless runs: the same Jupyter configuration a server would read
(``c.Agent.*``, ``c.Router.*``, ``c.ToolPolicy.*``, ``c.SandboxPolicy.*``), plus ``--config``."""

from __future__ import annotations

import getpass
import os

from traitlets.config import Config

from .notebook import BadInput

BASENAME = "jupyter_server_config"


def _load(folder: str, filename: str) -> Config:
    from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

    loader = JSONFileConfigLoader if filename.endswith(".json") else PyFileConfigLoader
    try:
        return loader(filename, path=folder).load_config()
    except Exception as e:
        raise BadInput(f"cannot load the configuration {filename!r}: {e}") from None


def load_config(extra: str | None = None) -> Config:
    from jupyter_core.paths import jupyter_config_path

    config = Config()
    for folder in reversed(jupyter_config_path()):
        for ext in (".json", ".py"):
            if os.path.isfile(os.path.join(folder, BASENAME + ext)):
                config.merge(_load(folder, BASENAME + ext))
    if extra:
        if not os.path.isfile(extra):
            raise BadInput(f"no configuration file {extra!r}")
        config.merge(_load(os.path.dirname(os.path.abspath(extra)), os.path.basename(extra)))
    return config


def local_user() -> str:
    try:
        return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "owner"
