"""JupyterLab's extension manager installs and removes packages with pip, as the server's
user: an sdist's ``setup.py`` runs there. The route table makes ``/lab/api/extensions``
admin-only; on a server several people use it is also read-only by default
(``c.LabApp.extension_manager = "readonly"``), unless an admin named a manager in any of
JupyterLab's config places (server or lab config file, command line), which is kept.
"""

from __future__ import annotations

import logging
import os
from typing import Any

READ_ONLY = "readonly"


def multi_user(*, users_configured: bool) -> bool:
    """A JupyterHub single-user server (the hub gives it its API token), or a gateway set
    up for users other than the owner (SSO issuers, roles or groups of named users)."""
    return bool(os.environ.get("JUPYTERHUB_API_TOKEN")) or users_configured


def lab_apps(serverapp: Any) -> list[Any]:
    """JupyterLab's extension app(s) in this server (none when JupyterLab is not loaded)."""
    manager = getattr(serverapp, "extension_manager", None)
    apps = getattr(manager, "extension_apps", None) or {}
    return [app for app in apps.get("jupyterlab", ()) if app.has_trait("extension_manager")]


def configured(app: Any) -> bool:
    """Whether someone named the manager: JupyterLab merged every config source by now."""
    config = app.config
    return "LabApp" in config and "extension_manager" in config.LabApp


def default_to_read_only(serverapp: Any, log: logging.Logger | logging.LoggerAdapter[Any]) -> bool:
    """Make JupyterLab's manager read-only unless it was configured. Runs while aiide loads:
    extensions load in name order, so JupyterLab has read its config but not yet built its
    handlers (which is when it picks the manager). True when something changed."""
    changed = False
    for app in lab_apps(serverapp):
        if configured(app) or app.extension_manager == READ_ONLY:
            continue
        app.extension_manager = READ_ONLY
        changed = True
        log.info(
            "aiide: several users share this server, so JupyterLab's extension manager is "
            "read-only (set c.LabApp.extension_manager = 'pypi' to allow installs by admins)"
        )
    return changed
