"""HTTP routes of the foundation: server status and kernel death notices."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from aiide_kernel.events import KernelEvents

from .api_handler import AiideAPIHandler
from .seams import ApiError
from .status import StatusService


class StatusHandler(AiideAPIHandler):
    auth_resource = "aiide"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        service: StatusService = self.settings["aiide_status"]
        # The agent's router says which models this caller can use (None: no agent).
        router = getattr(self.settings.get("aiide_agent"), "router", None)
        self.reply(await service.report(self.caller, router))


class KernelEventsHandler(AiideAPIHandler):
    auth_resource = "kernels"

    @web.authenticated
    @authorized
    async def get(self, kernel_id: str) -> None:
        # A dead kernel may be gone from the manager: its events still say why.
        events = KernelEvents.instance().for_kernel(kernel_id)
        if not events and kernel_id not in self.kernel_manager:
            raise ApiError(404, "unknown_kernel", f"no kernel {kernel_id}")
        self.reply({"kernel_id": kernel_id, "events": events})


default_handlers = [
    (r"/aiide/api/status", StatusHandler),
    (r"/aiide/api/kernels/(?P<kernel_id>[\w-]+)/events", KernelEventsHandler),
]
