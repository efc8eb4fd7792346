"""A Content-Security-Policy for the lab page (and every other Jupyter route).

Outputs of sandboxed kernels and model text are untrusted (docs/security.md, "The
browser"): the labextension isolates or sanitizes them, and this policy is the net under
it. It forbids what neither JupyterLab nor aiide needs: plugins (``object-src``), a
``<base>`` pointing elsewhere (which would re-target every relative URL of the lab),
framing by other sites, form posts to other sites, and connections (fetch, XHR,
WebSocket, EventSource) to any origin but the server's own: script that slipped past
everything else cannot send the user's data out by ``fetch``. Images stay allowed from
anywhere (a notebook's Markdown may show remote images its author wrote); model text and
sandboxed output put remote images behind a click instead.

An admin who sets ``Content-Security-Policy`` in ``ServerApp.tornado_settings['headers']``
keeps theirs; ``c.LabSecurityPolicy.enabled = False`` leaves Jupyter's default.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join
from traitlets import Bool, Unicode
from traitlets.config import Configurable

HEADER = "Content-Security-Policy"

#: ``{report_uri}`` is Jupyter's CSP report route under the server's base URL.
DEFAULT_POLICY = "; ".join(
    [
        "frame-ancestors 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        # 'self' covers ws:/wss: to the same host and port (CSP level 3).
        "connect-src 'self'",
        "report-uri {report_uri}",
    ]
)


class LabSecurityPolicy(Configurable):  # type: ignore[misc]
    """The lab page's Content-Security-Policy (``c.LabSecurityPolicy.*``)."""

    enabled = Bool(True, config=True, help="Send aiide's Content-Security-Policy.")
    policy = Unicode(
        DEFAULT_POLICY,
        config=True,
        help="The policy; '{report_uri}' becomes Jupyter's CSP report URL.",
    )

    def header(self, base_url: str) -> str:
        report_uri = url_path_join(base_url, "/api/security/csp-report")
        return str(self.policy).replace("{report_uri}", report_uri)


def apply_csp(settings: dict[str, Any], config: Any) -> str | None:
    """Adds the policy to the tornado ``headers`` setting (a new dict: the server's own
    is left alone) unless the admin set one; returns the policy in force (or None)."""
    csp = LabSecurityPolicy(config=config)
    headers = dict(settings.get("headers") or {})
    if HEADER in headers:
        return str(headers[HEADER])
    if not csp.enabled:
        return None
    headers[HEADER] = csp.header(str(settings.get("base_url", "/")))
    settings["headers"] = headers
    return str(headers[HEADER])
