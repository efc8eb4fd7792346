"""``aiide-broker``: the JupyterHub service that holds the provider keys.

Single-user servers point their model providers at the broker (``<broker>/anthropic``,
``<broker>/openai/v1``; see ``providers.py``) with their hub token as the "API key". The
broker identifies the student with the hub, applies their courses (allowed models, exam
mode, daily/weekly token budget, rate limit), adds the real key and streams the provider's
answer back chunk by chunk, counting the tokens it sees (the model routes live in
``relay.py``). Instructors read and change their courses through ``/api/courses/...``.

Run as a hub-managed service: ``python -m aiide_server_ext.hub --config broker_config.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any
from urllib.parse import urlparse

from tornado import web
from traitlets import Dict, Enum, Float, Int, List, Unicode
from traitlets.config import Application

from .handlers import CourseHandler, MeHandler, NotFoundHandler
from .service import Broker


class BrokerApp(Application):  # type: ignore[misc]
    """``c.BrokerApp.*``: the aiide key broker (a JupyterHub service)."""

    name = "aiide-broker"
    config_file = Unicode("", config=True, help="A Python or JSON config file to load.")
    course_dir = Unicode("", config=True, help="Directory of course files (YAML or JSON).")
    upstreams = Dict(
        {
            "anthropic": {
                "base_url": "https://api.anthropic.com",
                "api_key_env": "ANTHROPIC_API_KEY",
            }
        },
        config=True,
        help="Provider -> {base_url, api_key_file or api_key_env, models}. models: the "
        "model id prefixes it serves (hub/serving.py has the defaults), against which an "
        "instructor's switch of a course's models is checked. api_key_file: a file "
        "holding the key, owned by the broker's user and readable by nobody else (the broker "
        "refuses to start otherwise); api_key_env: an environment variable of the broker's "
        "(visible in /proc to every process of the same user: use it only when no student "
        "code runs as that user).",
    )
    default_course = Unicode(
        "",
        config=True,
        help="What hub users in no course get (and teaching none): empty (the default) "
        "refuses their model calls with code 'no_course'; a course name applies that "
        "course's models, budgets, limits and exam mode to them.",
    )
    max_body_bytes = Int(
        32 * 1024 * 1024,
        config=True,
        help="Largest model request body (bytes; the provider's own request limit). Larger "
        "ones are refused with 413 'body_too_large' from their headers, before any body is "
        "read; chunked bodies as they pass the limit.",
    )
    max_api_body_bytes = Int(
        1024 * 1024,
        config=True,
        help="Largest body on the broker's other routes (course changes, instructor API).",
    )
    trusted_proxies = List(
        Unicode(),
        config=True,
        help="Addresses or networks of proxies in front of the broker (e.g. "
        "['10.0.0.5', '10.1.0.0/16']) whose X-Forwarded-For is believed for the audited "
        "client address. Empty (the default): the connection's own address, so a caller "
        "cannot write another address into the audit trail.",
    )
    allowed_anthropic_betas = List(
        Unicode(),
        config=True,
        help="anthropic-beta values callers may send through the broker. Empty (the "
        "default): none; a request with another beta is refused ('header_not_allowed'). "
        "Betas can turn on provider-run tools billed outside the token budgets.",
    )
    allowed_tool_types = List(
        Unicode(),
        config=True,
        help="Tool types besides plain client tools ('custom' / 'function') a request may "
        "declare, e.g. ['web_search_20250305']. Empty (the default): provider-run tools "
        "(web search, code execution…; billed per use, outside the budgets) are refused "
        "('tool_not_allowed').",
    )
    completion_max_tokens = Int(
        1024,
        config=True,
        help="While exam mode turns chat off but leaves completion on: the most tokens a "
        "call may ask for and still count as an inline completion (the completer's own cap).",
    )
    completion_max_prompt_chars = Int(
        8000,
        config=True,
        help="While exam mode turns chat off but leaves completion on: the longest prompt "
        "text a call may carry and still count as an inline completion.",
    )
    audit_scan_rows = Int(
        20000,
        config=True,
        help="Audit rows one api/audit request examines at most; a search that has not "
        "found enough by then answers with what it found and where to continue (more, "
        "next_after), so a search with no match never reads the whole table at once.",
    )
    admin_groups = List(
        Unicode(), config=True, help="Hub groups that may change every course and read audit."
    )
    role_groups = Dict(
        config=True,
        help="Hub role -> groups a holder of the role counts as, so hub roles join the "
        "group-based course policy, e.g. {'instructor': ['instructors'], 'course-admin': "
        "['staff']} (with 'staff' in admin_groups). Needs the broker's hub role to hold "
        "'read:roles:users' when a caller's token cannot read its own roles.",
    )
    redis_url = Unicode("", config=True, help="Redis shared by broker replicas (limits, usage).")
    redis_failure_mode = Enum(
        ["open", "closed"], "closed", config=True, help="Redis down: refuse (closed) or admit."
    )
    redis_timeout = Float(2.0, config=True, help="Seconds to wait for Redis.")
    rate_limit = Unicode(
        "60/minute", config=True, help="Model calls per student when no course sets one."
    )
    db_path = Unicode("", config=True, help="sqlite file for the audit trail.")
    database_url = Unicode(
        "",
        config=True,
        help="PostgreSQL URL for the audit trail shared by broker replicas "
        "(postgresql://user@host/db). Empty: the sqlite file db_path.",
    )
    hub_api_url = Unicode(
        "http://127.0.0.1:8081/hub/api", config=True, help="Used when JUPYTERHUB_API_URL is unset."
    )
    upstream_timeout = Float(
        300.0,
        config=True,
        help="Seconds the provider may stay silent (before its answer starts, between chunks).",
    )
    hub_timeout = Float(3.0, config=True, help="Seconds to wait for the hub's API.")
    identity_cache_seconds = Float(
        30.0,
        config=True,
        help="Seconds a token's owner and groups are cached (hub outages). A token used in "
        "the last quarter of that time is looked up again in the background, so a student "
        "who keeps calling never waits for the hub; a revoked token is refused at most this "
        "long after its last look-up.",
    )
    course_reload_interval = Float(
        5.0,
        config=True,
        help="Seconds between checks of course_dir for edited, added or removed course "
        "files; an edit applies to the next request, no restart (SIGHUP rereads at once). "
        "A file that does not parse is refused (logged, shown on the broker's health page) "
        "and the courses loaded before stay. 0: only SIGHUP.",
    )
    port = Int(0, config=True, help="Port (default: from JUPYTERHUB_SERVICE_URL).")
    aliases = {"config": "BrokerApp.config_file", "port": "BrokerApp.port"}

    def initialize(self, argv: Any = None) -> None:
        super().initialize(argv)
        if self.config_file:
            directory, name = os.path.split(os.path.abspath(self.config_file))
            self.load_config_file(name, path=directory)
            self.update_config(self.cli_config)

    def make_app(self) -> tuple[web.Application, Broker]:
        from .audit import audit_handlers
        from .described import described_handlers
        from .health import CourseFiles, HealthHandler
        from .helpuse import help_handlers
        from .relay import relay_handlers
        from .roster import roster_handlers
        from .sharing import sharing_handlers
        from .usage import usage_handlers

        broker = Broker(self)
        broker.course_files = CourseFiles(broker)
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/aiide-broker/")
        prefix = "/" + prefix.strip("/") + "/"
        kw = {"broker": broker}
        handlers: list[Any] = [
            *relay_handlers(prefix, kw),
            *described_handlers(prefix, kw),
            (prefix + "(?:health)?", HealthHandler, kw),
            (prefix + "api/me", MeHandler, kw),
            (prefix + r"api/courses/([\w.-]+)", CourseHandler, kw),
            *audit_handlers(prefix, kw),
            *usage_handlers(prefix, kw),
            *roster_handlers(prefix, kw),
            *sharing_handlers(prefix, kw),
            *help_handlers(prefix, kw),
        ]
        app = web.Application(
            handlers, default_handler_class=NotFoundHandler, default_handler_args=kw
        )
        return app, broker

    def start(self) -> None:
        import signal

        signal.signal(signal.SIGINT, signal.default_int_handler)  # hub shutdown must not wait
        url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:0"))
        port = self.port or url.port or 0

        async def main() -> None:
            app, broker = self.make_app()
            # The upstream client (its import and TLS context take ~0.3 s of CPU) is made
            # now, not by the first student's call while 49 others wait behind it.
            broker.http()
            # No xheaders: X-Forwarded-For is believed from trusted_proxies only (prepare).
            # Bodies are limited per route as they stream in (BrokerHandler), so tornado's
            # own cap must not cut a connection before the handler can answer 413.
            server = app.listen(port, url.hostname or "127.0.0.1", max_body_size=1 << 40)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            files = broker.course_files
            loop.add_signal_handler(signal.SIGHUP, lambda: files.reload(force=True))
            watcher = None
            if self.course_reload_interval > 0:
                watcher = asyncio.ensure_future(files.watch(self.course_reload_interval))
            self.log.info(
                "aiide broker on %s:%s (%d courses)", url.hostname, port, len(broker.files)
            )
            try:
                await stop.wait()
            finally:
                if watcher is not None:
                    watcher.cancel()
                server.stop()
                await broker.close()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())


def main(argv: list[str] | None = None) -> None:
    app = BrokerApp.instance()
    app.initialize(argv)
    app.start()
