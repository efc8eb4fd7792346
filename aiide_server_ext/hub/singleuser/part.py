"""The ``aiide_server_ext.hub`` server extension in a student's single-user server.

``load`` puts the course gate (``gate.py``) in front of the gateway's gate, the course
tool policy in front of the agent's (``tools.py``), points the agent's providers at the
broker (``providers.py``) and adds the course routes (``handlers.py``,
``share_client.py``). ``c.AiideHub.*`` configures it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from traitlets import Bool, Dict, Float, Unicode
from traitlets.config import Configurable

from aiide_server_ext.seams import GateRefusal, gate_of

from .gate import BrokerClient, CourseGate, CourseQuotas
from .handlers import CourseHandler, InstructorApiHandler, _openapi

CHAT_SOCKET = "/aiide/api/chat/ws"


class AiideHub(Configurable):  # type: ignore[misc]
    """``c.AiideHub.*`` in the single-user server's config."""

    broker_url = Unicode(
        "",
        config=True,
        help="The broker's URL as this server reaches it, e.g. "
        "http://127.0.0.1:8765/services/aiide-broker/ (default: $AIIDE_BROKER_URL).",
    )
    timeout = Float(5.0, config=True, help="Seconds to wait for the broker.")
    role_groups = Dict(
        config=True,
        help="Hub role -> groups its holders count as here (so c.Gateway.group_roles gives "
        "them aiide roles), e.g. {'instructor': ['instructors']}; the broker's "
        "c.BrokerApp.role_groups should say the same.",
    )
    sandboxed_kernels_only = Bool(
        True,
        config=True,
        help="Offer only sandboxed kernelspecs in this server (others are hidden from the "
        "launcher and refused by name). Under a hub every user's server runs on shared "
        "machines next to the broker; an unsandboxed kernel runs code as the server's user, "
        "which can read what that user can (with the 'simple' spawner: the broker's "
        "process and files). Turn off only for servers of trusted staff.",
    )
    terminals = Bool(
        False,
        config=True,
        help="Offer terminals in this server. Off by default under a hub: a terminal is a "
        "shell outside the sandbox, as the server's user (what sandboxed_kernels_only "
        "keeps students from), and students' roles hold no 'terminals' scope, so the "
        "launcher's Terminal card would only fail. Turn on for servers of trusted staff.",
    )
    route_providers = Bool(
        True,
        config=True,
        help="Point the agent's anthropic and openai providers at the broker, with the "
        "hub token as their key (hub/singleuser/providers.py); a provider spec with "
        "'via_broker': False is left alone.",
    )


#: Background tasks of this extension (kept, so they are not garbage-collected).
_TASKS: set[Any] = set()


def _learn_at_start(gate: CourseGate, broker: BrokerClient, serverapp: Any) -> None:
    """Ask the broker for the course's models once the server runs, so the picker the
    student first sees is already the course's (and an instructor's dashboard is there)."""
    import asyncio

    from tornado.ioloop import IOLoop

    async def learn() -> None:
        try:
            gate.learn(await broker.me())
        except GateRefusal as e:
            serverapp.log.warning("aiide hub: course models not known yet: %s", e.message)

    def start() -> None:
        task = asyncio.ensure_future(learn())
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)

    IOLoop.current().add_callback(start)


def _no_terminals(serverapp: Any) -> None:
    """No terminal service, and the lab told so (its launcher shows no Terminal card),
    whichever of this and the terminals extension loads first."""
    from tornado.ioloop import IOLoop

    serverapp.terminals_enabled = False
    settings = serverapp.web_app.settings
    settings["terminals_available"] = False
    IOLoop.current().add_callback(settings.__setitem__, "terminals_available", False)


class ChatSocketXsrfNoise(logging.Filter):
    """Drops JupyterHub's "Skipping XSRF check for insecure request GET …/chat/ws", logged
    for every chat socket a browser opens over plain http to a non-local address: the
    browser sends no ``Sec-Fetch-Mode`` there, so the hub cannot see the request is a
    WebSocket handshake, which it exempts from XSRF anyway (the handshake is
    origin-checked by jupyter_server). The warning said nothing true and hid real ones."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            message.startswith("Skipping XSRF check for insecure request GET ")
            and message.endswith(CHAT_SOCKET)
        )


def load(serverapp: Any) -> None:
    config = AiideHub(config=serverapp.config)
    app_log = logging.getLogger("tornado.application")
    if not any(isinstance(f, ChatSocketXsrfNoise) for f in app_log.filters):
        app_log.addFilter(ChatSocketXsrfNoise())
    if not config.terminals:
        _no_terminals(serverapp)
    if config.sandboxed_kernels_only:
        from aiide_server_ext.kernelspecs import install_defaults

        install_defaults(serverapp, hide_unsandboxed=True)
    url = config.broker_url or os.environ.get("AIIDE_BROKER_URL", "")
    if not url:
        serverapp.log.warning("aiide hub: no c.AiideHub.broker_url: course policies are off")
        return
    broker = BrokerClient(url, os.environ.get("JUPYTERHUB_API_TOKEN", ""), config.timeout)
    settings = serverapp.web_app.settings
    inner = gate_of(settings)
    if config.role_groups and hasattr(inner, "hub_role_groups"):
        inner.hub_role_groups = {str(r): frozenset(g) for r, g in config.role_groups.items()}
    gate = CourseGate(inner, broker)
    gateway: Any = inner  # the gateway's own gate (the usage API reads its quotas)
    if getattr(gateway, "quotas", None) is not None:
        gateway.quotas = CourseQuotas(gateway.quotas, broker)
    settings["aiide_gate"] = gate
    settings["aiide_broker"] = broker
    for ext in serverapp.extension_manager.extension_apps.get("aiide_server_ext", ()):
        ext.use_gate(gate)  # the agent and knowledge parts, through the extension's seam
    # The aiide extension loaded first ("aiide_server_ext" < "aiide_server_ext.hub"), so
    # its services are in the server's settings: the agent is found there.
    from .tools import install

    gate.tool_policy = install(settings)
    if gate.tool_policy is None:
        serverapp.log.warning("aiide hub: no agent found: course tool policies are off")
    from . import tutoring

    gate.tutor = tutoring.install(settings, broker, serverapp.root_dir)
    if gate.tool_policy is not None:
        gate.tool_policy.tutor = gate.tutor
    router = getattr(settings.get("aiide_agent"), "router", None)
    routers = [router] if router is not None else []
    for router in routers:
        router.model_filter = gate.models.permits
    gate.routers = routers
    _learn_at_start(gate, broker, serverapp)  # the models, and whether the user teaches
    if config.route_providers:
        from . import providers

        routed = providers.install(settings, url)
        serverapp.log.info("aiide hub: providers through the broker: %s", routed)
        status = settings.get("aiide_status")
        if routed and status is not None:  # the broker holds the keys: ask for none
            status.model_source = "the course's key broker"
    base = serverapp.web_app.settings.get("base_url", "/")
    serverapp.web_app.add_handlers(
        ".*$",
        [
            (base.rstrip("/") + "/aiide/api/course", CourseHandler),
            (base.rstrip("/") + r"/aiide/api/course/(?P<name>[\w.-]+)", CourseHandler),
            (
                base.rstrip("/") + r"/aiide/api/course-admin/(?P<kind>"
                r"usage|limits|audit|courses|roster|export|help|shares(?:/[\w-]{1,64})?)",
                InstructorApiHandler,
            ),
        ],
    )
    from .share_client import share_routes

    serverapp.web_app.add_handlers(".*$", share_routes(base))
    settings.setdefault("aiide_openapi_paths", {}).update(_openapi())
    serverapp.log.info("aiide hub: course policies from %s", url)
