"""A cap on what a sandboxed kernel sends to the browser.

The lab receives a kernel's outputs over the kernel channels WebSocket. Jupyter's rate
limit there (``iopub_data_rate_limit``) counts the bytes of ``stream`` messages only: a
sandboxed kernel's ``display(HTML(...))`` of 100 MB goes to the browser whole, which then
parses and renders it, and the tab stops answering (or dies). Untrusted code must not be
able to do that to the user's lab, so for kernels started in the sandbox this connection
drops an output message over ``max_message_bytes``, and every output of a cell run past
``max_execution_bytes``, and tells the cell why with a short ``stderr`` notice naming the
setting. Output the server forwards is otherwise untouched; kernels outside the sandbox
keep Jupyter's behaviour (their code is the user's own).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection
from traitlets import Int

from .kernelspecs import kernel_is_sandboxed

#: Messages that carry output into a cell (what the cap counts and may drop).
OUTPUT_TYPES = frozenset(
    {"stream", "display_data", "execute_result", "update_display_data", "error"}
)
#: Cell runs whose byte count is kept (the oldest are forgotten).
TRACKED_RUNS = 64
MIB = 1024 * 1024


def _mib(n: int) -> str:
    return f"{n / MIB:.1f} MB"


class CappedKernelConnection(ZMQChannelsWebsocketConnection):  # type: ignore[misc]
    """The kernel WebSocket, capping a sandboxed kernel's output (``c.CappedKernelConnection``)."""

    max_message_bytes = Int(
        16 * MIB,
        config=True,
        help="Largest output message (display data, stream, error) of a sandboxed kernel "
        "sent to the browser, in bytes; a larger one is replaced by a notice in its cell. "
        "0: no limit.",
    )
    max_execution_bytes = Int(
        64 * MIB,
        config=True,
        help="Output bytes of one cell run of a sandboxed kernel sent to the browser; past "
        "this the run's further outputs are dropped, with one notice in the cell. 0: no "
        "limit.",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sandboxed: bool | None = None
        #: Bytes sent per cell run (parent msg_id), and the runs already told.
        self._sent: OrderedDict[str, int] = OrderedDict()
        self._told: set[str] = set()

    @property
    def sandboxed(self) -> bool:
        if self._sandboxed is None:  # the kernel (manager) is this connection's parent
            self._sandboxed = kernel_is_sandboxed(self.parent)
        return self._sandboxed

    def handle_outgoing_message(self, stream: Any, outgoing_msg: list[Any]) -> None:
        if not self._capped(stream, outgoing_msg):
            super().handle_outgoing_message(stream, outgoing_msg)

    def _capped(self, stream: Any, msg_list: list[Any]) -> bool:
        """Whether the message was dropped (a notice sent in its place when due)."""
        if isinstance(stream, str):
            stream = self.channels.get(stream)
        if getattr(stream, "channel", None) != "iopub" or not self.sandboxed:
            return False
        size = sum(len(part) for part in msg_list)
        if size < 4096:  # status, small outputs: not worth unpacking
            return False
        _, parts = self.session.feed_identities(msg_list)
        header = self.session.unpack(parts[1])
        if header.get("msg_type") not in OUTPUT_TYPES:
            return False
        parent = self.session.unpack(parts[2])
        run = str(parent.get("msg_id", ""))
        sent = self._sent.pop(run, 0)
        self._sent[run] = sent  # most recent last
        while len(self._sent) > TRACKED_RUNS:
            old, _ = self._sent.popitem(last=False)
            self._told.discard(old)
        if self.max_message_bytes and size > self.max_message_bytes:
            self._notify(
                stream,
                parent,
                f"An output of {_mib(size)} from the sandboxed kernel was not sent to the "
                f"browser: over the limit of {_mib(self.max_message_bytes)} a message "
                "(c.CappedKernelConnection.max_message_bytes).",
            )
            return True
        if self.max_execution_bytes and sent + size > self.max_execution_bytes:
            if run not in self._told:
                self._told.add(run)
                self._notify(
                    stream,
                    parent,
                    "This run's output from the sandboxed kernel passed "
                    f"{_mib(self.max_execution_bytes)}; the rest was not sent to the browser "
                    "(c.CappedKernelConnection.max_execution_bytes).",
                )
            return True
        self._sent[run] = sent + size
        return False

    def _notify(self, stream: Any, parent: dict[str, Any], what: str) -> None:
        """A ``stderr`` line in the cell, as if the kernel had printed it."""
        text = f"[aiide] {what} Write large results to a file instead.\n"
        self.log.warning("Kernel %s: %s", getattr(self.parent, "kernel_id", "?"), what)
        msg = self.session.msg("stream", {"name": "stderr", "text": text}, parent=parent)
        wire = self.session.serialize(msg)  # [delimiter, signature, header, parent, ...]
        if self.subprotocol == "v1.kernel.websocket.jupyter.org":
            self._on_zmq_reply(stream, wire[2:])  # type: ignore[no-untyped-call]
        else:
            self._on_zmq_reply(stream, self.session.deserialize(wire[1:]))  # type: ignore[no-untyped-call]


def apply_output_cap(settings: dict[str, Any], server: Any) -> bool:
    """Use the capped connection for kernel WebSockets, unless the server was configured
    with a connection class of its own (a kernel gateway's, an admin's): those are left
    as they are, and the log says the cap is off."""
    current = getattr(server, "kernel_websocket_connection_class", None)
    if current is not None and current is not ZMQChannelsWebsocketConnection:
        server.log.warning(
            "aiide: kernel_websocket_connection_class is %s; sandboxed kernels' output to "
            "the browser is not capped (see c.CappedKernelConnection)",
            getattr(current, "__name__", current),
        )
        return False
    settings["kernel_websocket_connection_class"] = CappedKernelConnection
    return True
