"""Kernel-state introspection calls none of the user's code (issue 13, item 2).

A real sandboxed kernel (bwrap) holds objects whose every hook — ``__getattr__``,
``__getattribute__``, ``__len__``, a ``__class__`` property, ``__repr__``, ``__str__``, a
metaclass's ``__eq__`` and ``__getattribute__`` — writes a file when called. The agent's
introspection request (the same ``user_expressions`` call, through ``KernelRunner``) must
describe them without one file appearing; DataFrames come from real pandas.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from jupyter_client.multikernelmanager import AsyncMultiKernelManager
from sandbox_support import require_backend
from traitlets.config import Config

from aiide_server_ext.agent import introspect
from aiide_server_ext.agent.kernels import KernelRunner

pytestmark = [pytest.mark.asyncio, pytest.mark.xdist_group("sandbox")]

SETUP = r"""
import os
import numpy as np
import pandas as pd

def _touch(what):
    open(os.path.join(os.getcwd(), "touched-" + what), "w").close()

class Meta(type):
    def __eq__(cls, other):
        _touch("meta_eq")
        return False
    __hash__ = type.__hash__
    def __getattribute__(cls, name):
        if name not in ("__dict__", "__mro__"):
            _touch("meta_getattribute_" + name)
        return type.__getattribute__(cls, name)

class Trap(metaclass=Meta):
    def __getattr__(self, name):
        _touch("getattr_" + name)
        raise AttributeError(name)
    def __len__(self):
        _touch("len")
        return 1
    def __repr__(self):
        _touch("repr")
        return "trap"
    def __str__(self):
        _touch("str")
        return "trap"
    @property
    def __class__(self):
        _touch("class")
        return pd.DataFrame
    @property
    def shape(self):
        _touch("shape")
        return (1, 1)

class Label:
    def __str__(self):
        _touch("label_str")
        return "label"
    __repr__ = __format__ = __str__

class Lying(list):
    def __len__(self):
        _touch("list_len")
        return 0

class ReprRaises(pd.DataFrame):
    def __repr__(self):
        _touch("frame_repr")
        raise RuntimeError("no repr")
    @property
    def _constructor(self):
        return ReprRaises

class Unprintable:
    def __repr__(self):
        _touch("cell_repr")
        raise RuntimeError("no repr")

trap = Trap()
lying = Lying([1, 2, 3])
bad_frame = ReprRaises({"a": [1, 2]})
wide = pd.DataFrame(np.zeros((2, 10_000)), columns=[f"c{i}" for i in range(10_000)])
people = pd.DataFrame({"age": [31, 42], "name": ["ada", "alan"], "blob": [Unprintable(), 1]})
people[Label()] = [1.5, 2.5]
ratings = pd.Series([1.0, 2.0])
grid = np.zeros((3, 4), dtype="int32")
count = 7
title = "ada"
"""


@pytest_asyncio.fixture
async def kernel(tmp_path: Path) -> AsyncIterator[tuple[KernelRunner, str, Path]]:
    require_backend("bwrap")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    tmp_path.chmod(0o755)
    workspace.chmod(0o777)
    config = Config()
    config.SandboxPolicy.backend = "bwrap"
    config.SandboxPolicy.workspace_root = str(tmp_path)
    config.SandboxPolicy.memory_limit = "1G"
    config.SandboxPolicy.max_processes = 64
    km = AsyncMultiKernelManager(config=config)
    kid = await km.start_kernel(kernel_name="aiide-python", cwd=str(workspace))
    runner = KernelRunner(km, None, str(workspace), "aiide-python")
    try:
        result = await runner.execute(kid, SETUP, timeout=120)
        assert result.status == "ok", result.outputs
        for leftover in workspace.glob("touched-*"):  # setting up may call the hooks
            leftover.unlink()
        yield runner, kid, workspace
    finally:
        await runner.shutdown()
        await km.shutdown_all(now=True)


async def state(runner: KernelRunner, kid: str) -> dict[str, dict[str, Any]]:
    expr = introspect.expression(limit=40, max_chars=100_000)
    result = await runner.execute(
        kid, "", timeout=60, silent=True, user_expressions={"state": expr}
    )
    items = introspect.parse(result.user_expressions["state"])
    assert items is not None, result.user_expressions
    return dict(items)


async def test_no_user_hook_runs_during_introspection(
    kernel: tuple[KernelRunner, str, Path],
) -> None:
    runner, kid, workspace = kernel
    found = await state(runner, kid)
    assert sorted(os.listdir(workspace)) == [], "introspection called user code"
    assert found["trap"] == {"type": "__main__.Trap"}  # not the DataFrame __class__ claims
    assert found["lying"] == {"type": "__main__.Lying"}  # a list subclass: no len()


async def test_dataframe_schemas_come_from_real_pandas(
    kernel: tuple[KernelRunner, str, Path],
) -> None:
    runner, kid, workspace = kernel
    found = await state(runner, kid)
    people = found["people"]
    assert people["type"] == "pandas.DataFrame" and people["shape"] == [2, 4]
    assert people["columns"]["age"] == "int64" and people["columns"]["blob"] == "object"
    assert "<__main__.Label>" in people["columns"]  # a user-defined label: its type only
    assert found["ratings"] == {"type": "pandas.Series", "shape": [2], "dtype": "float64"}
    assert found["grid"] == {"type": "numpy.ndarray", "shape": [3, 4], "dtype": "int32"}
    assert found["count"] == {"type": "int", "value": "7"}
    assert found["title"] == {"type": "str", "len": 3, "value": "ada"}
    assert found["bad_frame"] == {"type": "__main__.ReprRaises"}  # a subclass: no schema
    assert sorted(os.listdir(workspace)) == []


async def test_a_frame_of_ten_thousand_columns_is_capped(
    kernel: tuple[KernelRunner, str, Path],
) -> None:
    runner, kid, _ = kernel
    wide = (await state(runner, kid))["wide"]
    assert wide["shape"] == [2, 10_000]
    assert list(wide["columns"]) == [f"c{i}" for i in range(30)]
    line = introspect.render([("wide", wide)])
    assert line.endswith("… (9970 more)") and len(line) < 1000


async def test_the_prompt_answer_stays_under_its_cap(
    kernel: tuple[KernelRunner, str, Path],
) -> None:
    runner, kid, _ = kernel
    expr = introspect.expression(max_chars=300)
    result = await runner.execute(
        kid, "", timeout=60, silent=True, user_expressions={"state": expr}
    )
    items = introspect.parse(result.user_expressions["state"])
    assert items is not None and items[-1] == ("…", {"type": "more variables not shown"})
    assert len(introspect.render(items)) < 1500
