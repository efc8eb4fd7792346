"""The fix loop's dependency analysis and check detection (pure functions, no kernel)."""

from __future__ import annotations

from typing import Any

from aiide_server_ext.agent.fixloop.checks import check_of, checks_of
from aiide_server_ext.agent.fixloop.deps import Graph, cell_names


def nb(*sources: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "cells": [
            {"id": f"c{i}", "cell_type": "code", "source": s, "metadata": dict(meta or {})}
            for i, s in enumerate(sources)
        ]
    }


def test_names_defined_and_used() -> None:
    n = cell_names("import pandas as pd\ndf = pd.read_csv(path)\ndef f(a):\n    return a + k\n")
    assert {"pd", "df", "f"} <= n.defines
    assert n.uses == {"path", "k"}  # pd is defined before its use; builtins are not names


def test_magics_and_shell_escapes_parse() -> None:
    n = cell_names("%matplotlib inline\n!ls\nx = total * 2\n%time y = g(x)\n")
    assert not n.opaque
    assert "total" in n.uses and "x" in n.defines
    assert "g" in n.uses  # inside a line magic, still a use


def test_syntax_error_is_opaque_and_downstream_of_everything() -> None:
    g = Graph.of(nb("a = 1", "b = a +", "c = 2"))
    assert g.names["c1"].opaque
    assert g.downstream({"c0"}) == ["c1"]


def test_downstream_is_by_names_not_position() -> None:
    g = Graph.of(nb("x = 1", "y = 2", "z = x + 1", "print(y)", "w = z * 2"))
    assert g.downstream({"c0"}) == ["c2", "c4"]  # c4 through z, c3 untouched
    assert g.upstream("c4") == ["c0", "c2"]


def test_mutation_counts_as_definition() -> None:
    g = Graph.of(nb("df = load()", "df['a'] = 1", "print(df)"))
    assert g.downstream({"c1"}) == ["c2"]


def test_checks() -> None:
    cells = nb("x = 1", "assert x == 1", "# tests\ncheck(x)")["cells"]
    cells.append(
        {
            "id": "g",
            "cell_type": "code",
            "source": "f(1)",
            "metadata": {"nbgrader": {"grade": True, "solution": False, "points": 1}},
        }
    )
    assert [c.kind for c in map(check_of, cells) if c] == ["assert", "tests", "nbgrader"]
    assert set(checks_of({"cells": cells})) == {"c1", "c2", "g"}


def test_refresh_names_a_cell_redefines() -> None:
    g = Graph.of(nb("n = 0", "m = 1", "while True:\n    n += 1", "print(m)"))
    assert g.refresh("c2") == ["c0"]  # n is used and redefined; m is not touched
    assert g.refresh("c3") == []


def test_a_reassignment_reads_before_it_writes() -> None:
    n = cell_names("df = df.dropna()\ntotal += 1")
    assert n.uses == {"df", "total"} and n.defines == {"df", "total"}
