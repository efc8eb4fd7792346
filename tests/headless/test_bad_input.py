"""Bad input to ``jupyter aiide run`` / ``replay``: a clear message, exit code 2, nothing
written or overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiide_server_ext.cli import main
from aiide_server_ext.headless.notebook import BadInput, parse_param
from aiide_server_ext.headless.policy_file import PolicyFile, PolicyFileError

from .runs import write_nb


def run(tmp_path: Path, *args: str) -> int:
    return main(["run", *args])


def test_missing_notebook(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "nope.ipynb"), "--goal", "g"]) == 2
    assert "no notebook" in capsys.readouterr().err


def test_corrupt_notebook_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.ipynb"
    bad.write_text('{"cells": [')
    out = tmp_path / "out.ipynb"
    assert main(["run", str(bad), "--goal", "g", "-o", str(out), "--config", "/dev/null.json"]) == 2
    assert not out.exists()
    assert "error" in capsys.readouterr().err


def test_a_parameter_that_does_not_parse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nb = write_nb(tmp_path / "nb.ipynb")
    assert main(["run", str(nb), "--goal", "g", "-p", "xs=[1,2"]) == 2
    assert "does not parse as JSON" in capsys.readouterr().err
    assert main(["run", str(nb), "--goal", "g", "-p", "no-equals"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "nb.aiide.ipynb").exists()


def test_parameters_parse_as_json_or_plain_strings() -> None:
    assert parse_param("n=3") == ("n", 3)
    assert parse_param("xs=[1, 2]") == ("xs", [1, 2])
    assert parse_param("name=alice") == ("name", "alice")
    with pytest.raises(BadInput):
        parse_param("1x=2")


def test_policy_files_are_checked() -> None:
    with pytest.raises(PolicyFileError, match="expected one of"):
        PolicyFile.from_dict({"risk": {"high": "sometimes"}})
    with pytest.raises(PolicyFileError, match="unknown policy sections"):
        PolicyFile.from_dict({"rules": {}})
    with pytest.raises(PolicyFileError, match="positive integer"):
        PolicyFile.from_dict({"limits": {"max_steps": 0}})
    assert PolicyFile.from_dict({"approvals": {"default": "approve"}}).answer_for("x") == "approve"


def test_replay_of_a_file_that_is_not_a_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "t.jsonl"
    bad.write_text("not json\n")
    assert main(["replay", str(bad)]) == 2
    assert "not a JSON line" in capsys.readouterr().err
