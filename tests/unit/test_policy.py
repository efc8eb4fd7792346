"""SandboxPolicy: sizes, validation, workspace confinement, pool fingerprints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aiide_kernel.policy import SandboxConfigError, SandboxPolicy, format_size, parse_size


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2G", 2 * 1024**3),
        ("512M", 512 * 1024**2),
        ("512MiB", 512 * 1024**2),
        ("1.5g", int(1.5 * 1024**3)),
        (4096, 4096),
        ("100", 100),
    ],
)
def test_sizes_parse(value: int | str, expected: int) -> None:
    assert parse_size(value, "x") == expected


@pytest.mark.parametrize("value", ["", "lots", "-1G", "0", 0, "2X"])
def test_bad_sizes_name_the_setting(value: int | str) -> None:
    with pytest.raises(SandboxConfigError, match=r"c\.SandboxPolicy\.memory_limit"):
        parse_size(value, "c.SandboxPolicy.memory_limit")


def test_sizes_format_for_people() -> None:
    assert format_size(2 * 1024**3) == "2 GiB"
    assert format_size(512 * 1024**2) == "512 MiB"


def test_workspace_defaults_to_the_root(tmp_path: Path) -> None:
    policy = SandboxPolicy(workspace_root=str(tmp_path))
    assert policy.resolve_workspace(None, None) == os.path.realpath(tmp_path)


def test_workspace_must_stay_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "outside").mkdir()
    policy = SandboxPolicy(workspace_root=str(tmp_path / "root"))
    with pytest.raises(SandboxConfigError, match="outside"):
        policy.resolve_workspace(str(tmp_path / "root" / ".." / "outside"), None)


def test_fingerprint_follows_every_setting() -> None:
    a = SandboxPolicy()
    assert a.fingerprint() == SandboxPolicy().fingerprint()
    assert a.fingerprint() != SandboxPolicy(memory_limit="1G").fingerprint()
    assert a.fingerprint() != SandboxPolicy(allow_network=True).fingerprint()
