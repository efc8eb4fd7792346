"""The offline model build: cached by its inputs, installed where chromadb loads it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
from optional import require

from aiide_server_ext.knowledge import model_install as mi
from aiide_server_ext.knowledge.embeddings import MODEL_FILES, MODEL_NAME, model_problem


def cached_artefact() -> Path:
    folder = mi.cache_root() / f"{MODEL_NAME}-{mi.inputs_key()}"
    found = (folder / mi.STAMP).exists()
    require("embedding-model", found, f"no cached model build for these inputs in {folder}")
    return folder


def test_install_from_the_cache_is_verified(tmp_path: Path) -> None:
    cached_artefact()
    logs: list[str] = []
    target = mi.install(tmp_path / "models", log=logs.append)
    assert target == tmp_path / "models" / MODEL_NAME
    assert model_problem(target) is None
    assert sorted(p.name for p in (target / "onnx").iterdir()) == sorted(MODEL_FILES)
    stamp = json.loads((target / mi.STAMP).read_text())
    assert stamp["key"] == mi.inputs_key() and stamp["opset"] == 17
    assert stamp["max_abs_diff"] <= mi.TOLERANCE and stamp["torch"].startswith("2.13.0")
    assert "torch" not in sys.modules  # built in its own environment, never imported here

    logs.clear()
    mi.install(tmp_path / "models", log=logs.append)
    assert logs == [f"model up to date: {target}"]


def test_a_damaged_install_is_repaired(tmp_path: Path) -> None:
    cached_artefact()
    target = mi.install(tmp_path / "models", log=lambda _m: None)
    (target / "onnx" / "model.onnx").unlink()
    mi.install(tmp_path / "models", log=lambda _m: None)
    assert model_problem(target) is None


def test_inputs_key_changes_with_the_pins(monkeypatch: pytest.MonkeyPatch) -> None:
    key = mi.inputs_key()
    monkeypatch.setattr(mi, "PINS", (*mi.PINS, "extra==1"))
    assert mi.inputs_key() != key


def test_cli_registers_models_install() -> None:
    parser = argparse.ArgumentParser(prog="jupyter aiide")
    mi.register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["models", "install", "--models-dir", "/x", "--quiet"])
    assert args.func is mi._cmd_install and args.models_dir == "/x" and args.quiet
