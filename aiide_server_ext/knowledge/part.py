"""The knowledge part of the extension (``c.Knowledge.*``).

Importing this module imports neither chromadb nor onnxruntime: they load in the
background a few seconds after the server starts (or on first use), so the server
starts as fast without the index as with it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from traitlets import Bool, Enum, Float, Int, List, Unicode

from ..extension_parts import ExtensionPart

CONTENTS_EVENTS = "https://events.jupyter.org/jupyter_server/contents_service/v1"
JOB_EVENTS = "https://events.aiide.dev/knowledge/job/v1"
#: Shipped in the package (events/job.v1.json) and registered with the server's event bus.
JOB_EVENT_SCHEMA = Path(__file__).with_name("events") / "job.v1.json"


class Knowledge(ExtensionPart):
    """A per-user chromadb index of the workspace, searchable by users and the agent."""

    enabled = Bool(True, config=True, help="Serve the knowledge index and its routes.")
    data_dir = Unicode(
        "",
        config=True,
        help="Folder of the embedded chromadb index. Default: <jupyter data dir>/aiide/knowledge.",
    )
    models_dir = Unicode(
        "",
        config=True,
        help="Folder holding all-MiniLM-L6-v2/onnx/ (made by `jupyter aiide models install`). "
        "Default: <jupyter data dir>/aiide/models.",
    )
    auto_install_model = Bool(
        True,
        config=True,
        help="Obtain the local embedding model (onnx backend) on first use -- the first "
        "search or /learn -- in the background, the way `jupyter aiide models install` does "
        "(cached in ~/.cache/aiide; a first build downloads torch into a throwaway "
        "environment for a few minutes). Search answers 503 model_installing with the "
        "progress until it is done. False: search answers model_unavailable with the "
        "command to run.",
    )
    auto_install_retry_seconds = Float(
        60.0,
        config=True,
        help="After a failed automatic install (no disk space, no network), seconds before "
        "the next search tries again.",
    )
    embedding_backend = Enum(
        ["onnx", "openai"],
        "onnx",
        config=True,
        help="onnx: all-MiniLM-L6-v2 on onnxruntime, local. openai: an OpenAI-compatible "
        "/v1/embeddings endpoint (embedding_base_url). Changing it re-indexes.",
    )
    embedding_base_url = Unicode(
        "", config=True, help="Base URL of the OpenAI-compatible API, e.g. http://host:port/v1."
    )
    embedding_model = Unicode(
        "text-embedding-3-small", config=True, help="Model name sent to the endpoint."
    )
    embedding_api_key_env = Unicode(
        "OPENAI_API_KEY",
        config=True,
        help="Environment variable holding the endpoint's API key (never logged or stored).",
    )
    embedding_timeout = Float(30.0, config=True, help="Seconds per embedding request.")
    chroma_host = Unicode(
        "", config=True, help="A chroma server (client/server mode). Empty: embedded index."
    )
    chroma_port = Int(8000, config=True, help="Port of the chroma server.")
    chroma_ssl = Bool(False, config=True, help="Use HTTPS to reach the chroma server.")
    chroma_token_env = Unicode(
        "",
        config=True,
        help="Environment variable with a token sent to the chroma server as a Bearer header.",
    )
    index_on_save = Bool(
        True, config=True, help="Re-index a file in the background when it is saved."
    )
    max_file_size = Int(1_000_000, config=True, help="Bytes; larger files are skipped.")
    max_notebook_size = Int(
        20_000_000, config=True, help="Bytes; notebooks carry outputs, so their limit is higher."
    )
    extensions = List(
        Unicode(),
        default_value=None,
        allow_none=True,
        config=True,
        help="File extensions indexed (default: notebooks, Python, Markdown, common text).",
    )
    include_hidden = Bool(False, config=True, help="Index dot-files and dot-folders too.")
    chunk_chars = Int(1200, config=True, help="Target size of a chunk, in characters.")
    chunk_overlap = Int(150, config=True, help="Overlap of size-split text chunks.")
    max_output_chars = Int(500, config=True, help="Cell output text kept per notebook cell.")
    warm_up_delay = Float(
        5.0,
        config=True,
        help="Seconds after server start before chromadb and the model load in the "
        "background, so the first search is quick. Negative: load on first use.",
    )

    def initialize(self, settings: dict[str, Any]) -> None:
        if not self.enabled:
            return
        from .chunking import Limits
        from .embeddings import CountingEmbedder
        from .files import TEXT_EXTENSIONS, ScanLimits, Workspace
        from .index import Store
        from .service import KnowledgeService

        server = self._server()
        data = Path(self.data_dir) if self.data_dir else self._data_home() / "knowledge"
        workspace = Workspace(
            server.root_dir,
            ScanLimits(
                self.max_file_size,
                self.max_notebook_size,
                tuple(e.lower() for e in self.extensions or TEXT_EXTENSIONS),
                self.include_hidden,
            ),
        )
        token = os.environ.get(self.chroma_token_env, "") if self.chroma_token_env else ""
        self.embedder = CountingEmbedder(self._embedder())
        store = Store(
            self.embedder,
            path=str(data / "chroma"),
            host=self.chroma_host or None,
            port=self.chroma_port,
            ssl=self.chroma_ssl,
            headers={"Authorization": f"Bearer {token}"} if token else None,
        )
        self.service = KnowledgeService(
            workspace,
            store,
            self.embedder,
            Limits(self.chunk_chars, self.chunk_overlap, self.max_output_chars),
            on_progress=self._emit,
            index_on_save=self.index_on_save,
            meter=self._meter,
        )
        self._settings = settings
        settings["aiide_knowledge"] = self.service
        self._hook(server)

    def _server(self) -> Any:
        parent: Any = self.parent  # the AiideExtension
        return parent.server

    def _data_home(self) -> Path:
        from jupyter_core.paths import jupyter_data_dir

        return Path(jupyter_data_dir()) / "aiide"

    def _embedder(self) -> Any:
        from .embeddings import OnnxMiniLMEmbedder, OpenAICompatEmbedder, default_models_dir

        if self.embedding_backend == "openai":
            if not self.embedding_base_url:
                self.log.warning(
                    "aiide knowledge: embedding_backend=openai needs embedding_base_url"
                )
            key = os.environ.get(self.embedding_api_key_env) if self.embedding_api_key_env else None
            return OpenAICompatEmbedder(
                self.embedding_base_url, self.embedding_model, key, self.embedding_timeout
            )
        models = Path(self.models_dir) if self.models_dir else default_models_dir()
        installer = None
        if self.auto_install_model:
            from .installer import ModelInstaller

            installer = ModelInstaller(models, retry_seconds=self.auto_install_retry_seconds)
        return OnnxMiniLMEmbedder(models, installer=installer)

    def _hook(self, server: Any) -> None:
        """Saves, renames and deletes keep the index fresh."""
        server.contents_manager.register_post_save_hook(self._on_save)
        events = getattr(server, "event_logger", None)
        if events is not None:
            events.register_event_schema(JOB_EVENT_SCHEMA)
            events.add_listener(schema_id=CONTENTS_EVENTS, listener=self._on_contents_event)

    def _on_save(self, os_path: str, model: Any = None, contents_manager: Any = None) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a contents manager saving from a worker thread
            loop = getattr(self, "_loop", None)
            if loop is not None:
                loop.call_soon_threadsafe(self.service.file_saved, os_path)
            return
        self.service.file_saved(os_path)

    async def _on_contents_event(self, logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        action, path = data.get("action"), str(data.get("path", "")).strip("/")
        if action == "rename":
            self.service.file_renamed(str(data.get("source_path", "")).strip("/"), path)
        elif action == "delete":
            self.service.file_deleted(path)
        elif action == "copy":
            self.service.file_copied(path)

    def _emit(self, job: Any) -> None:
        events = getattr(self._server(), "event_logger", None)
        if events is None:
            return
        events.emit(
            schema_id=JOB_EVENTS,
            data={
                "job_id": job.id,
                "user": job.user,
                "path": job.path,
                "trigger": job.trigger,
                "status": job.status,
                "files_done": job.files_done,
                "files_total": job.files_total,
                "chunks_added": job.chunks_added,
                "chunks_updated": job.chunks_updated,
                "chunks_removed": job.chunks_removed,
                "errors_total": job.errors_total,
                "skipped_total": job.skipped_total,
                "detail": job.detail,
            },
        )

    async def _meter(self, user: str, feature: str, calls: list[Any]) -> None:
        """Every request to a paid embedding endpoint goes to the gateway's usage records,
        as the agent's model calls do (the local ONNX model costs nothing and is not)."""
        from ..seams import Caller, gate_of

        # Looked up per call, in the settings the handlers see: the gateway may load later.
        web_app = getattr(self._server(), "web_app", None)
        gate = gate_of(getattr(web_app, "settings", None) or self._settings)
        caller = self.service.known_caller(user)
        if caller is None:  # a save before any request of theirs since the server started
            owner = getattr(gate, "owner", None)
            caller = owner if isinstance(owner, Caller) and owner.username == user else None
        for call in calls:
            await gate.record_model_usage(
                caller or Caller(username=user),
                provider=self.embedding_backend,
                model=call.model,
                feature=feature,
                input_tokens=call.tokens,
                output_tokens=0,
            )

    def handlers(self) -> list[tuple[str, Any]]:
        if not self.enabled:
            return []
        from .handlers import default_handlers

        return list(default_handlers)

    async def start(self) -> None:
        if not self.enabled:
            return
        self._loop = asyncio.get_running_loop()
        if self.warm_up_delay >= 0:
            task = asyncio.create_task(self._warm_up())
            self._background = {task}
            task.add_done_callback(self._background.discard)

    async def _warm_up(self) -> None:
        await asyncio.sleep(self.warm_up_delay)
        try:
            await asyncio.to_thread(self.service.store.client)
            # Loads the ONNX session (~0.5 s of CPU), only if the model is there: a server
            # start is not a use, so it never starts the automatic install.
            inner: Any = self.embedder.inner
            if self.embedding_backend == "onnx" and inner.problem() is None:
                await asyncio.to_thread(inner.embed, ["warm up"])
            await self.service.check_models()
        except Exception as e:  # a missing model is reported on use, with the fix
            self.log.info("aiide knowledge: not warmed up: %s", e)

    async def stop(self) -> None:
        for task in getattr(self, "_background", set()):
            task.cancel()
        service = getattr(self, "service", None)
        if service is not None:
            await service.stop()
