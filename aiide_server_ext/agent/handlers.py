"""Thin tornado handlers over ``AgentService`` (all logic lives there).

Errors the service raises (``AgentError``, the gate's refusals) pass through to the
one ``write_error`` of ``json_api.py``; a body is the chat protocol's size at most and
its errors carry the protocol's codes (``too_large``, ``bad_message``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from typing import Any

from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web, websocket
from tornado.iostream import IOStream, StreamClosedError

from ..api_handler import AiideAPIHandler
from ..seams import ApiError, Caller, gate_of
from .export import FORMATS, content_disposition
from .providers.base import ProviderError
from .service import AgentService

AUTH_RESOURCE = "aiide"


class AgentHandler(AiideAPIHandler):
    auth_resource = AUTH_RESOURCE
    too_large_code = "too_large"
    invalid_json_code = "bad_message"

    @property
    def service(self) -> AgentService:
        service: AgentService = self.settings["aiide_agent"]
        return service

    @property
    def max_body_bytes(self) -> int:  # type: ignore[override]
        return self.service.max_message_bytes


class ConversationsHandler(AgentHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        query = self.get_query_argument("q", None)
        self.reply(self.service.list_conversations(self.caller, query))


class ConversationHandler(AgentHandler):
    @web.authenticated
    @authorized
    async def get(self, cid: str) -> None:
        self.reply(self.service.get_conversation(self.caller, cid))

    @web.authenticated
    @authorized
    async def delete(self, cid: str) -> None:
        self.service.delete_conversation(self.caller, cid)
        self.no_content()

    @web.authenticated
    @authorized
    async def patch(self, cid: str) -> None:
        self.reply(self.service.rename_conversation(self.caller, cid, self.json_body()))


class ConversationExportHandler(AgentHandler):
    @web.authenticated
    @authorized
    async def get(self, cid: str) -> None:
        fmt = self.get_query_argument("format", "markdown")
        name, document = self.service.export_conversation(self.caller, cid, fmt)
        self.set_header("Content-Disposition", content_disposition(name))
        # APIHandler.finish would label the file application/json otherwise
        self.finish(document, set_content_type=FORMATS[fmt][1])


class ModelsHandler(AgentHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(self.service.models(self.caller))


class KeysHandler(AgentHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(self.service.keys(self.caller))


class KeyHandler(AgentHandler):
    @web.authenticated
    @authorized
    async def put(self, provider: str) -> None:
        body = self.json_body()
        key = body.get("key") if isinstance(body, dict) else None
        self.service.set_key(self.caller, provider, key if key is not None else "")
        self.no_content()

    @web.authenticated
    @authorized
    async def delete(self, provider: str) -> None:
        self.service.set_key(self.caller, provider, None)
        self.no_content()


class CompleteHandler(AgentHandler):
    """Inline completion; closing the request cancels the model call.

    With ``"stream": true`` the answer is NDJSON: a ``{"completion"}`` line for each longer
    view of the text as the model writes it, then the final answer (``done``); an error
    after the first line is a last ``{"code", "message"}`` line (the status is sent).
    """

    _task: asyncio.Task[dict[str, Any]] | None = None
    _streaming = False

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        on_text = self._send_text if isinstance(body, dict) and body.get("stream") else None
        self._task = asyncio.ensure_future(self.service.complete(self.caller, body, on_text))
        try:
            result = await self._task
        except asyncio.CancelledError:
            return  # the client went away
        except (ApiError, ProviderError) as e:
            error = e if isinstance(e, ApiError) else ApiError(503, e.code, e.message)
            if not self._streaming:
                raise error from None
            self.finish(json.dumps(error.as_dict()) + "\n")
            return
        if self._streaming:
            self.finish(json.dumps({**result, "done": True}) + "\n")
        else:
            self.reply(result)

    def _send_text(self, text: str) -> None:
        if not self._streaming:
            self._streaming = True
            self.set_header("Content-Type", "application/x-ndjson")
            self.set_header("Cache-Control", "no-store")
        self.write(json.dumps({"completion": text}) + "\n")
        # A closed connection fails this flush; on_connection_close cancels the call.
        self.flush().add_done_callback(lambda done: done.exception())

    def on_connection_close(self) -> None:
        if self._task is not None:
            self._task.cancel()


#: WebSocket opcode of a text frame and the final-fragment bit (RFC 6455 section 5.2).
TEXT_FRAME = 0x1
FIN = 0x80


class ChatConnection:
    """The chat socket as the fan-out (``fanout.py``) sees it."""

    def __init__(self, handler: ChatSocketHandler, username: str) -> None:
        self.handler = handler
        self.username = username
        self.open_notebooks: set[str] = set()
        protocol = handler.ws_connection
        # tornado's write_message wraps each frame in a Task, only so that awaiting it
        # can raise WebSocketClosedError; the fan-out never awaits its sends. At 500 streams
        # that Task per token frame was a tenth of the server's CPU, so uncompressed
        # frames are written straight to the stream (the same frame, without the Task).
        self._frames = (
            protocol
            if isinstance(protocol, websocket.WebSocketProtocol13)
            and handler.get_compression_options() is None
            else None
        )
        # A plain TCP stream (not TLS) with nothing queued takes a frame straight from
        # send(2): tornado's write would add a Future, its callback and a buffer round per
        # frame. Whatever send(2) does not take goes through tornado's write, and once
        # anything is queued every frame does, so frames stay in order.
        stream = getattr(protocol, "stream", None)
        self._socket = stream.socket if type(stream) is IOStream else None

    def send(self, text: str) -> None:
        protocol = self._frames
        if protocol is None:
            with contextlib.suppress(websocket.WebSocketClosedError):
                self.handler.write_message(text)
            return
        if protocol.is_closing():
            return  # gone: what it missed is stored for a ``resume``
        data = text.encode()
        n = len(data)
        if n < 126:  # a final, unmasked text frame (RFC 6455 section 5.2)
            frame = bytes((FIN | TEXT_FRAME, n)) + data
        elif n <= 0xFFFF:
            frame = struct.pack("!BBH", FIN | TEXT_FRAME, 126, n) + data
        else:
            frame = struct.pack("!BBQ", FIN | TEXT_FRAME, 127, n) + data
        stream = protocol.stream
        if self._socket is not None and not stream._write_buffer:
            try:
                sent = self._socket.send(frame)
            except OSError:  # full (EAGAIN) or broken: tornado's write queues or closes
                sent = 0
            if sent == len(frame):
                return
            frame = frame[sent:]
        with contextlib.suppress(StreamClosedError):
            stream.write(frame)


class ChatSocketHandler(WebSocketMixin, websocket.WebSocketHandler, JupyterHandler):  # type: ignore[misc]
    auth_resource = AUTH_RESOURCE
    conn: ChatConnection | None = None
    caller: Caller | None = None

    @property
    def service(self) -> AgentService:
        service: AgentService = self.settings["aiide_agent"]
        return service

    @property
    def max_message_size(self) -> int:
        # Frames over the protocol cap get a ``too_large`` error; far larger ones close.
        return 4 * self.service.max_message_bytes

    @ws_authenticated
    @authorized
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        self.set_nodelay(True)  # tokens are small frames: Nagle would hold them ~40 ms
        self.caller = gate_of(self.settings).caller(self)
        self.conn = ChatConnection(self, self.caller.username)
        self.service.connected(self.conn)

    async def on_message(self, message: str | bytes) -> None:
        if self.conn is not None and self.caller is not None:
            await self.service.handle(self.conn, self.caller, message)

    def on_close(self) -> None:
        if self.conn is not None:
            self.service.disconnected(self.conn)
            self.conn = None


default_handlers = [
    (r"/aiide/api/chat/ws", ChatSocketHandler),
    (r"/aiide/api/complete", CompleteHandler),
    (r"/aiide/api/agent/conversations", ConversationsHandler),
    (r"/aiide/api/agent/conversations/(?P<cid>[\w-]+)", ConversationHandler),
    (r"/aiide/api/agent/conversations/(?P<cid>[\w-]+)/export", ConversationExportHandler),
    (r"/aiide/api/agent/models", ModelsHandler),
    (r"/aiide/api/agent/keys", KeysHandler),
    (r"/aiide/api/agent/keys/(?P<provider>[\w.-]+)", KeyHandler),
]
