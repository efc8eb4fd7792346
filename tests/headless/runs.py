"""Running ``jupyter aiide`` as a user would: a subprocess, with a config file pointing the
agent at the fake model (the product reaches it through base_url)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agent.conftest import KEY, OAI_KEY, agent_config

CLI = [sys.executable, "-m", "aiide_server_ext.cli"]
#: A policy file's text: medium-risk tools (running cells) need no answer.
AUTO = '{"risk": {"medium": "auto"}}'


def write_config(folder: Path, anthropic_url: str, openai_url: str, **agent: Any) -> Path:
    config = {
        "Agent": agent_config(anthropic_url, openai_url, **agent),
        "Router": {"retry_base_delay": 0.01, "max_retries": 0, "idle_timeout": 5.0},
        "SandboxPolicy": {"memory_limit": "512M", "max_processes": 64},
        "KernelPool": {"size": 0},
    }
    path = folder / "aiide_config.json"
    path.write_text(json.dumps(config))
    return path


def write_nb(path: Path, cells: list[tuple[str, str]] | None = None, **meta: Any) -> Path:
    cells = cells or [("markdown", "# Analysis")]
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": meta,
        "cells": [
            {
                "id": f"c{i}",
                "cell_type": kind,
                "metadata": {"tags": ["parameters"]} if src.startswith("# parameters") else {},
                "source": src,
                **({"outputs": [], "execution_count": None} if kind == "code" else {}),
            }
            for i, (kind, src) in enumerate(cells)
        ],
    }
    path.write_text(json.dumps(nb))
    return path


def _env(cwd: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AIIDE_T_ANTHROPIC": KEY,
        "AIIDE_T_OPENAI": OAI_KEY,
        "JUPYTER_CONFIG_DIR": str(cwd / ".jupyter"),
        "COLUMNS": "200",
    }


async def start(*args: str, cwd: Path) -> asyncio.subprocess.Process:
    """``jupyter aiide ARGS`` started, not awaited (to signal it while it runs)."""
    return await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        cwd=cwd,
        env=_env(cwd),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def aiide(*args: str, cwd: Path, timeout: float = 90) -> tuple[int, str, str]:
    proc = await start(*args, cwd=cwd)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def run_with_policy(
    cfg: Path, cwd: Path, *extra: str, goal: str = "g", timeout: float = 90
) -> tuple[int, str, str]:
    """``jupyter aiide run nb.ipynb --goal GOAL EXTRA --policy policy.json --config CFG``."""
    return await aiide(
        "run",
        "nb.ipynb",
        "--goal",
        goal,
        *extra,
        "--policy",
        "policy.json",
        "--config",
        str(cfg),
        cwd=cwd,
        timeout=timeout,
    )


async def interrupt_when(
    cfg: Path,
    cwd: Path,
    ready: Callable[[list[dict[str, Any]]], bool],
    what: str,
    settle: float = 0,
) -> tuple[int, str]:
    """``jupyter aiide run nb.ipynb --goal g --policy policy.json --config CFG`` stopped by
    Ctrl-C once its trace shows ``ready`` (and ``settle`` seconds more): the exit code and
    stderr. A run still going when this ends is killed; ``what`` names the moment waited for."""
    args = ["run", "nb.ipynb", "--goal", "g", "--policy", "policy.json", "--config", str(cfg)]
    proc = await start(*args, cwd=cwd)
    trace = cwd / "nb.aiide.trace.jsonl"
    try:
        for _ in range(2400):
            try:
                records = read_lines(trace) if trace.exists() else []
            except ValueError:  # a line being written
                records = []
            if ready(records):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"the run never reached {what}")
        await asyncio.sleep(settle)
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def provenance(path: Path) -> dict[str, Any]:
    """What an output notebook says about the run that wrote it (``metadata.aiide``)."""
    return dict(json.loads(path.read_text())["metadata"]["aiide"])


def replay_sync(trace: Path, config: Path | None, timeout: float = 180) -> tuple[int, str]:
    """``jupyter aiide replay TRACE`` (exit code, stderr), as a user would run it."""
    args = [*CLI, "replay", str(trace)] + (["--config", str(config)] if config else [])
    done = subprocess.run(
        args,
        cwd=trace.parent,
        env=_env(trace.parent),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode, done.stderr
