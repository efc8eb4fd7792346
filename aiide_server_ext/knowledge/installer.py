"""The embedding model obtained on first use, in the background (``auto_install_model``).

A user who ran ``pip install`` and ``jupyter lab`` has no model yet. The first search or
``/learn`` starts the same cached, offline install ``jupyter aiide models install`` does
(``model_install.install``) in a thread; until it is done, search answers
``model_installing`` with the step it is at, and the rest of aiide works as before. A
failed install (no disk space, no network for a first build) is reported with its
reason and tried again on use after ``retry_seconds``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .embeddings import MODEL_NAME, ModelNotReady

log = logging.getLogger(__name__)

#: What each step of ``model_install.PHASES`` is doing, in the user's words.
PHASE_TEXT = {
    "starting": "starting",
    "environment": "installing torch into a throwaway build environment (minutes, once "
    "per machine)",
    "export": "exporting the model to ONNX",
    "verify": "checking the export against the original model",
    "copy": "copying the model into place",
}


class ModelInstaller:
    """One background install at a time, its progress, and when to try again."""

    def __init__(
        self,
        models_dir: Path,
        retry_seconds: float = 60.0,
        install: Callable[..., Path] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.models_dir = models_dir
        self.retry_seconds = retry_seconds
        self._install = install
        self._clock = clock
        self._lock = threading.Lock()
        self.state = "idle"  # idle | installing | ready | failed
        self.phase = ""
        self.error = ""
        self.attempts = 0
        self._started = 0.0
        self._finished = 0.0
        self._thread: threading.Thread | None = None

    def ensure(self) -> None:
        """Start installing unless an install runs or failed less than retry_seconds ago."""
        with self._lock:
            if self.state == "installing":
                return
            if self.state == "failed" and self._retry_in() > 0:
                return
            self.state, self.phase, self.error = "installing", "starting", ""
            self.attempts += 1
            self._started = self._clock()
            # A thread, not a task: the install is blocking work (subprocesses, copies)
            # and ensure() is called from the threads chromadb is used in.
            self._thread = threading.Thread(
                target=self._run, name="aiide-model-install", daemon=True
            )
            self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Until the running install (if any) ends; True when it has."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _run(self) -> None:
        from . import model_install as mi

        install = self._install or mi.install
        log.info("aiide knowledge: installing the embedding model into %s", self.models_dir)
        try:
            install(self.models_dir, log=log.debug, progress=self._progress)
        except Exception as e:  # reported on use; the server goes on without the model
            reason = str(e) if isinstance(e, mi.ModelInstallError) else f"{type(e).__name__}: {e}"
            with self._lock:
                self.state, self.error, self._finished = "failed", reason, self._clock()
            log.warning("aiide knowledge: the embedding model install failed: %s", reason)
            return
        with self._lock:
            self.state, self.phase, self._finished = "ready", "", self._clock()
        log.info(
            "aiide knowledge: embedding model installed in %.1fs",
            self._finished - self._started,
        )

    def _progress(self, phase: str) -> None:
        with self._lock:
            self.phase = phase

    def _retry_in(self) -> float:
        return max(0.0, self.retry_seconds - (self._clock() - self._finished))

    def report(self) -> dict[str, Any]:
        """For status and errors: state, step i of n, a 0..1 progress, and why it failed."""
        from .model_install import PHASES

        with self._lock:
            step = PHASES.index(self.phase) + 1 if self.phase in PHASES else 0
            out: dict[str, Any] = {
                "model": MODEL_NAME,
                "state": self.state,
                "phase": self.phase,
                "detail": PHASE_TEXT.get(self.phase, self.phase),
                "step": step,
                "steps": len(PHASES),
                "progress": round(step / (len(PHASES) + 1), 3)
                if self.state == "installing"
                else (1.0 if self.state == "ready" else 0.0),
                "attempts": self.attempts,
                "error": self.error or None,
            }
            if self.state == "installing":
                out["seconds"] = round(self._clock() - self._started, 1)
            if self.state == "failed":
                out["retry_in"] = round(self._retry_in(), 1)
            return out

    def not_ready(self) -> ModelNotReady:
        report = self.report()
        if report["state"] == "failed":
            when = (
                f"in {report['retry_in']:.0f}s, on the next search"
                if report["retry_in"] > 0
                else "on the next search"
            )
            return ModelNotReady(
                f"the embedding model could not be installed: {self.error}. "
                f"It is tried again {when}.",
                "model_install_failed",
                report,
            )
        step = (
            f"step {report['step']} of {report['steps']}: {report['detail']}"
            if report["step"]
            else report["detail"]
        )
        return ModelNotReady(
            f"the embedding model is being installed in the background ({step}); "
            "search works when it is done",
            "model_installing",
            report,
        )
