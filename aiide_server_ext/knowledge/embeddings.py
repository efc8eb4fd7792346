"""Embedding backends behind one small interface, built once and reused.

Two backends: chromadb's own ONNX all-MiniLM-L6-v2 (onnxruntime, no torch), loaded
from a local folder so it never reaches for a model hub, and any OpenAI-compatible
``/v1/embeddings`` endpoint. chromadb and onnxruntime are imported on first use only:
importing this module costs nothing at server start.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_FILES = (
    "config.json",
    "model.onnx",
    "special_tokens_map.json",
    "tokenizer_config.json",
    "tokenizer.json",
    "vocab.txt",
)
INSTALL_COMMAND = "jupyter aiide models install"
AUTO_INSTALL = "the first one installs it in the background"
OPENAI_EF_NAME = "aiide_openai_compat"


class EmbeddingError(RuntimeError):
    """The backend could not embed (model missing, endpoint down); the message says why."""

    #: The error code the routes answer with (503).
    code = "model_unavailable"


class ModelNotReady(EmbeddingError):
    """The local model is being installed in the background (``model_installing``), or
    its install failed and is tried again later (``model_install_failed``)."""

    def __init__(self, message: str, code: str, install: dict[str, Any]):
        super().__init__(message)
        self.code = code
        #: The installer's report (state, step, steps, progress, …) for the UI.
        self.install = install


class Installer(Protocol):
    """What the ONNX embedder needs from ``installer.ModelInstaller``."""

    def ensure(self) -> None: ...

    def not_ready(self) -> ModelNotReady: ...

    def report(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class EmbeddingCall:
    """One request to a metered embedding endpoint, for the gateway's usage records."""

    model: str
    texts: int
    tokens: int
    #: False when the endpoint reported no usage and ``tokens`` is the 4-chars estimate.
    reported: bool


# Who is embedding is known in the async code (a job, a search) but the request runs in
# a worker thread; asyncio.to_thread copies the context, so the calls land in the list
# of the coroutine that asked for them, never in another user's.
_CALLS: ContextVar[list[EmbeddingCall] | None] = ContextVar("aiide_embedding_calls", default=None)


@contextlib.contextmanager
def collect_calls() -> Iterator[list[EmbeddingCall]]:
    """The metered embedding calls made in this context (threads started from it too)."""
    calls: list[EmbeddingCall] = []
    token = _CALLS.set(calls)
    try:
        yield calls
    finally:
        _CALLS.reset(token)


def _record(call: EmbeddingCall) -> None:
    calls = _CALLS.get()
    if calls is not None:
        calls.append(call)


def display_url(url: str) -> str:
    """``url`` without credentials (``https://user:key@host`` → ``https://host``), for
    messages that reach logs, job reports and the model."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def default_models_dir() -> Path:
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "aiide" / "models"


def model_problem(folder: Path) -> str | None:
    """Why the ONNX model in ``folder`` (which holds ``onnx/``) cannot load, or None."""
    missing = [name for name in MODEL_FILES if not (folder / "onnx" / name).is_file()]
    if missing:
        return (
            f"embedding model {MODEL_NAME} is not installed in {folder} "
            f"(missing {', '.join(missing)}): run `{INSTALL_COMMAND}`"
        )
    return None


class Embedder(Protocol):
    """What the index needs from a model. ``embed`` blocks: call it off the event loop."""

    @property
    def model_id(self) -> str:
        """Recorded with the index: a different id means a clean re-index."""
        ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    def chroma_function(self) -> Any:
        """The chromadb EmbeddingFunction to pass to ``get_collection``."""
        ...


class CountingEmbedder:
    """Counts what reaches the model: incremental indexing is proved by these numbers."""

    def __init__(self, inner: Embedder):
        self.inner = inner
        self.calls = 0
        self.texts = 0
        self.seconds = 0.0
        self.dimension: int | None = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        start = time.perf_counter()
        vectors = self.inner.embed(texts)
        with self._lock:
            self.calls += 1
            self.texts += len(texts)
            self.seconds += time.perf_counter() - start
            self.dimension = len(vectors[0]) if vectors else self.dimension
        return vectors

    def chroma_function(self) -> Any:
        return self.inner.chroma_function()


_registered = False
_offline_classes: dict[Path, type] = {}


def _register_chroma_functions() -> None:
    """chromadb rebuilds each collection's function by name when it lists collections."""
    global _registered
    if _registered:
        return
    from chromadb.utils.embedding_functions import register_embedding_function

    register_embedding_function(OpenAICompatFunction)  # type: ignore[no-untyped-call]
    _registered = True


def onnx_minilm_function(folder: Path) -> Any:
    """chromadb's ONNXMiniLM_L6_V2 reading ``folder/onnx`` and never downloading.

    ``DOWNLOAD_PATH`` is a class attribute, so each folder gets its own subclass rather
    than changing chromadb's class for everyone in the process. Padding is to the longest
    text of a batch instead of always 256 tokens: same vectors (the mask drops padding),
    several times faster on short cells.
    """
    from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

    folder = folder.resolve()
    cls = _offline_classes.get(folder)
    if cls is None:

        class OfflineMiniLM(ONNXMiniLM_L6_V2):  # type: ignore[misc]
            DOWNLOAD_PATH = folder

            def _download_model_if_not_exists(self) -> None:
                problem = model_problem(Path(self.DOWNLOAD_PATH))
                if problem:
                    raise EmbeddingError(problem)

            @property
            def tokenizer(self) -> Any:
                tok = self.__dict__.get("_aiide_tokenizer")
                if tok is None:
                    tok = self.Tokenizer.from_file(str(folder / "onnx" / "tokenizer.json"))
                    tok.enable_truncation(max_length=256)
                    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106
                    self.__dict__["_aiide_tokenizer"] = tok
                return tok

            def _forward(self, documents: list[str], batch_size: int = 32) -> Any:
                import numpy as np

                out = []
                for i in range(0, len(documents), batch_size):
                    encoded = self.tokenizer.encode_batch(documents[i : i + batch_size])
                    ids = np.array([e.ids for e in encoded], dtype=np.int64)
                    mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
                    feed = {
                        "input_ids": ids,
                        "attention_mask": mask,
                        "token_type_ids": np.zeros_like(ids),
                    }
                    hidden = self.model.run(None, feed)[0]
                    weights = mask[:, :, None].astype(hidden.dtype)
                    pooled = (hidden * weights).sum(1) / np.clip(weights.sum(1), 1e-9, None)
                    out.append(self._normalize(pooled).astype(np.float32))
                return np.concatenate(out) if out else np.zeros((0, 384), np.float32)

        cls = _offline_classes[folder] = OfflineMiniLM
    return cls()


class OnnxMiniLMEmbedder:
    """The default: all-MiniLM-L6-v2 on onnxruntime, 384 dimensions."""

    def __init__(self, models_dir: Path, batch_size: int = 32, installer: Installer | None = None):
        self.folder = models_dir / MODEL_NAME
        self.batch_size = batch_size
        #: Set when the model is obtained on first use (``c.Knowledge.auto_install_model``).
        self.installer = installer
        self._function: Any = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return f"onnx:{MODEL_NAME}"

    def problem(self) -> str | None:
        return model_problem(self.folder)

    def require(self) -> None:
        """Raise unless the model can load; while it installs in the background, say how
        far it has got (``ModelNotReady``)."""
        problem = self.problem()
        if problem is None:
            return
        installer = self.installer
        if installer is None or installer.report()["state"] in ("idle", "ready"):
            if installer is not None:
                problem += f" (or search or /learn in JupyterLab: {AUTO_INSTALL})"
            raise EmbeddingError(problem)
        raise installer.not_ready()

    def obtain(self) -> None:
        """A knowledge search or index asked by a user: start installing a missing model.

        Not in ``require``: the agent searches the index for context on every question,
        which must not start a build of minutes for someone who never used knowledge.
        """
        if self.installer is not None and self.problem() is not None:
            self.installer.ensure()

    def chroma_function(self) -> Any:
        with self._lock:
            if self._function is None:
                self.require()
                _register_chroma_functions()
                self._function = onnx_minilm_function(self.folder)
            return self._function

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        function = self.chroma_function()
        # Similar lengths batched together: less padding per batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            vectors = function([texts[i] for i in idx])
            for i, vector in zip(idx, vectors, strict=True):
                out[i] = vector.tolist()
        return out


def estimate_tokens(texts: Sequence[str]) -> int:
    """About four characters a token, as the agent estimates without a tokenizer."""
    return sum((len(t) + 3) // 4 for t in texts)


class OpenAICompatEmbedder:
    """Any ``/v1/embeddings`` endpoint (OpenAI, vLLM, llama.cpp, Ollama, a gateway)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        batch_size: int = 64,
    ):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.batch_size = batch_size
        self.usage_tokens = 0
        self._client: Any = None
        self._function: Any = None

    @property
    def model_id(self) -> str:
        return f"openai:{self.model}@{display_url(self.base_url)}"

    def _http(self) -> Any:
        if self._client is None:
            import httpx

            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._client = httpx.Client(timeout=self.timeout, headers=headers)
        return self._client

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        import httpx

        out: list[list[float]] = []
        where = display_url(self.base_url)
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            try:
                r = self._http().post(
                    f"{self.base_url}/embeddings", json={"model": self.model, "input": batch}
                )
            except httpx.HTTPError as e:
                raise EmbeddingError(
                    f"embedding endpoint {where} unreachable: {type(e).__name__}"
                    + (f": {display_url(str(e))}" if str(e) else "")
                ) from e
            if r.status_code != 200:
                raise EmbeddingError(
                    f"embedding endpoint {where} answered {r.status_code}: {r.text[:200]}"
                )
            try:
                body = r.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                raise EmbeddingError(f"embedding endpoint {where} answered something not JSON")
            # Served and so billed, even if the answer is unusable: metered before checks.
            raw_usage = body.get("usage")
            usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
            reported = isinstance(usage.get("prompt_tokens"), int)
            tokens = int(usage["prompt_tokens"]) if reported else estimate_tokens(batch)
            self.usage_tokens += tokens
            _record(EmbeddingCall(self.model, len(batch), tokens, reported))
            data = sorted(body.get("data") or [], key=lambda d: d.get("index", 0))
            if len(data) != len(batch):
                raise EmbeddingError(f"endpoint returned {len(data)} vectors for {len(batch)}")
            out.extend([float(x) for x in d["embedding"]] for d in data)
        return out

    def chroma_function(self) -> Any:
        if self._function is None:
            _register_chroma_functions()
            self._function = OpenAICompatFunction(embedder=self)
        return self._function

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class OpenAICompatFunction:
    """chromadb's view of an OpenAI-compatible endpoint (duck-typed EmbeddingFunction)."""

    def __init__(self, embedder: OpenAICompatEmbedder | None = None, **config: Any):
        self.embedder = embedder or OpenAICompatEmbedder(
            str(config.get("base_url", "")), str(config.get("model", ""))
        )

    def __call__(self, input: Sequence[str]) -> list[Any]:
        import numpy as np

        return [np.asarray(v, dtype=np.float32) for v in self.embedder.embed(input)]

    def embed_query(self, input: Sequence[str]) -> list[Any]:
        return self(input)

    @staticmethod
    def name() -> str:
        return OPENAI_EF_NAME

    @staticmethod
    def is_legacy() -> bool:
        return False

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine", "l2", "ip"]

    def get_config(self) -> dict[str, Any]:
        # Never the API key: chromadb persists this next to the data.
        return {"base_url": self.embedder.base_url, "model": self.embedder.model}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> OpenAICompatFunction:
        return OpenAICompatFunction(**config)

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        return None

    def validate_config_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        return None
