"""The fix loop's corpus: broken notebooks, each with the scripted model's answers and what
the loop must end with. Case names start ``caseNN_`` (the key the fake's script is picked
by: the notebook's name is in every prompt of its run). Cells are ``c0``, ``c1``... in order.

A turn is the model's answer in one attempt: a list of edits (``("replace", cell, source)``
or ``("insert", after, source)``), or a text (no edit). Groups run as one ``jupyter aiide
fix`` command each (one process, notebooks two at a time); a group sets the options its
cases need (a short cell timeout, a policy that rejects edits, a token budget).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Edit = tuple[str, str, str]
Turn = list[Edit] | str


@dataclass
class Case:
    name: str
    cells: list[str | dict[str, Any]]
    turns: list[Turn]
    status: str
    reason: str
    attempts: int
    #: Each attempt's result, in order (checked when given).
    results: list[str] | None = None
    group: str = "main"
    files: dict[str, str] = field(default_factory=dict)
    #: ``--cell``: the cell the user asked about (only in a group of its own).
    cell: str | None = None
    error_cell: str | None = None
    why: str = ""


def ran(source: str, text: str = "") -> dict[str, Any]:
    """A code cell saved with a clean run (its outputs are the downstream baseline)."""
    outputs = [{"output_type": "stream", "name": "stdout", "text": text}] if text else []
    return {"source": source, "execution_count": 1, "outputs": outputs}


def nbgrader(source: str, *, solution: bool, grade: bool, cell_id: str) -> dict[str, Any]:
    meta = {"grade": grade, "solution": solution, "locked": not solution, "grade_id": cell_id}
    if grade:
        meta["points"] = 1
    return {"source": source, "metadata": {"nbgrader": meta}}


CASES: list[Case] = [
    Case(
        "case01_renamed_variable",
        ["total_sales = 10", "print(total * 2)"],
        [[("replace", "c1", "print(total_sales * 2)")]],
        "verified",
        "fixed",
        1,
        ["verified"],
        why="NameError after a rename",
    ),
    Case(
        "case02_pandas_append_removed",
        [
            "import pandas as pd\ndf = pd.DataFrame({'a': [1]})",
            "df = df.append({'a': 2}, ignore_index=True)",
            "assert len(df) == 2",
        ],
        [[("replace", "c1", "df = pd.concat([df, pd.DataFrame({'a': [2]})], ignore_index=True)")]],
        "verified",
        "fixed",
        1,
        why="DataFrame.append was removed in pandas 2",
    ),
    Case(
        "case03_series_iteritems_removed",
        [
            "import pandas as pd\ns = pd.Series({'x': 1, 'y': 2})",
            "pairs = [f'{k}={v}' for k, v in s.iteritems()]\nprint(pairs)",
        ],
        [[("replace", "c1", "pairs = [f'{k}={v}' for k, v in s.items()]\nprint(pairs)")]],
        "verified",
        "fixed",
        1,
        why="Series.iteritems was removed in pandas 2",
    ),
    Case(
        "case04_wrong_column",
        [
            "import pandas as pd\ndf = pd.DataFrame({'price': [1.5, 2.5], 'qty': [2, 4]})",
            "revenue = (df['Price'] * df['qty']).sum()",
            "assert revenue == 13.0",
        ],
        [[("replace", "c1", "revenue = (df['price'] * df['qty']).sum()")]],
        "verified",
        "fixed",
        1,
        why="KeyError: a column's name in the wrong case",
    ),
    Case(
        "case05_assert_off_by_one",
        ["days = list(range(1, 31))", "assert len(days) == 31, len(days)"],
        [[("replace", "c0", "days = list(range(1, 32))")]],
        "verified",
        "fixed",
        1,
        why="off-by-one caught by an assert; the fix is upstream",
    ),
    Case(
        "case06_shape_mismatch",
        [
            "import numpy as np\na = np.ones((2, 3))\nb = np.ones((2, 3))",
            "c = a @ b",
            "assert c.shape == (2, 2)",
        ],
        [[("replace", "c1", "c = a @ b.T")]],
        "verified",
        "fixed",
        1,
        why="matmul of two 2x3 matrices",
    ),
    Case(
        "case07_missing_import",
        ["arr = np.arange(4)", "print(arr.sum())"],
        [[("replace", "c0", "import numpy as np\narr = np.arange(4)")]],
        "verified",
        "fixed",
        1,
        why="NameError: np never imported",
    ),
    Case(
        "case08_fix_breaks_downstream",
        [
            "data = [1, 2, 3]",
            "total = sum(dat)",
            ran("mean = total / len(data)\nprint(mean)", "2.0\n"),
            "assert mean == 2",
        ],
        [
            [("replace", "c1", "total = str(sum(data))")],
            [("replace", "c1", "total = sum(data)")],
        ],
        "verified",
        "fixed",
        2,
        ["broke_downstream", "verified"],
        why="the first patch breaks a cell that ran before: caught, tried again",
    ),
    Case(
        "case09_error_in_earlier_cell",
        [
            "import math",
            "radius = float('2,5')",
            "print('radius read')",
            "area = math.pi * radius ** 2\nprint(round(area, 2))",
        ],
        [[("replace", "c1", "radius = float('2.5')")]],
        "verified",
        "fixed",
        1,
        group="earlier",
        cell="c3",
        error_cell="c1",
        why="asked about c3, the error is in c1 before it",
    ),
    Case(
        "case10_infinite_loop_fixed",
        ["n = 0", "while True:\n    n += 1", "assert n == 10"],
        [[("replace", "c1", "for _ in range(10):\n    n += 1")]],
        "verified",
        "fixed",
        1,
        ["verified"],
        group="timeout",
        why="a cell that never ends: timeout, kernel interrupted, then fixed",
    ),
    Case(
        "case11_infinite_loop_no_fix",
        ["i = 0", "while i >= 0:\n    i += 1"],
        ["The loop looks intentional; I would not change it."],
        "not_verified",
        "no_patch",
        1,
        ["no_patch"],
        group="timeout",
        why="a cell that never ends and a model that does not fix it: the loop stops",
    ),
    Case(
        "case12_same_patch_twice",
        ["x = '3'", "y = x + 1", "assert y == 4"],
        [[("replace", "c1", "y = int(x) + 2")], [("replace", "c1", "y = int(x) + 2")]],
        "not_verified",
        "repeated_patch",
        2,
        ["check_failed", "repeated_patch"],
        why="the model proposes the same failing patch twice",
    ),
    Case(
        "case13_patch_cycle",
        ["x = 5", "y = x / 0", "assert y == 1"],
        [
            [("replace", "c1", "y = x / 1")],
            [("replace", "c1", "y = x / 2")],
            [("replace", "c1", "y = x / 1")],
        ],
        "not_verified",
        "repeated_patch",
        3,
        ["check_failed", "check_failed", "repeated_patch"],
        why="the notebook comes back to a state already tried (A, B, A)",
    ),
    Case(
        "case14_max_attempts",
        ["x = 5", "y = x / 0", "assert y == 1"],
        [
            [("replace", "c1", "y = x / 1")],
            [("replace", "c1", "y = x / 2")],
            [("replace", "c1", "y = x / 3")],
        ],
        "not_verified",
        "max_attempts",
        3,
        ["check_failed"] * 3,
        why="three different patches, none passes the check",
    ),
    Case(
        "case15_no_patch",
        ["value = undefined_name + 1"],
        ["I cannot tell what undefined_name should be."],
        "not_verified",
        "no_patch",
        1,
        ["no_patch"],
        why="the model changes nothing",
    ),
    Case(
        "case16_edit_rejected",
        ["print(missing)"],
        [[("replace", "c0", "print('found')")]],
        "not_verified",
        "patch_rejected",
        1,
        ["patch_rejected"],
        group="reject",
        why="the approval of the edit says no",
    ),
    Case(
        "case17_edit_denied_by_policy",
        ["print(missing)"],
        [[("replace", "c0", "print('found')")]],
        "not_verified",
        "patch_rejected",
        1,
        ["patch_rejected"],
        group="deny",
        why="the policy refuses edits",
    ),
    Case(
        "case18_runs_clean",
        ["x = 1", "assert x == 1"],
        [],
        "verified",
        "no_error",
        0,
        why="nothing to fix",
    ),
    Case(
        "case19_tests_cell",
        [
            "def add(a, b):\n    return a - b",
            "# tests\nassert add(2, 2) == 4\nassert add(1, 0) == 1",
        ],
        [[("replace", "c0", "def add(a, b):\n    return a + b")]],
        "verified",
        "fixed",
        1,
        why="a 'tests' cell fails; the function above is fixed",
    ),
    Case(
        "case20_nbgrader_test_cell",
        [
            nbgrader("def square(x):\n    return x * 2", solution=True, grade=False, cell_id="sq"),
            nbgrader("assert square(3) == 9", solution=False, grade=True, cell_id="t_sq"),
        ],
        [[("replace", "c0", "def square(x):\n    return x ** 2")]],
        "verified",
        "fixed",
        1,
        why="an nbgrader autograder test cell fails",
    ),
    Case(
        "case21_pytest_file",
        ["open('case21_out.txt', 'w').write(str(sum(range(4))))"],
        [[("replace", "c0", "open('case21_out.txt', 'w').write(str(sum(range(5))))")]],
        "verified",
        "fixed",
        1,
        files={
            "test_case21_pytest_file.py": (
                "def test_total():\n    assert open('case21_out.txt').read() == '10'\n"
            )
        },
        why="the notebook runs clean but the pytest file next to it fails",
    ),
    Case(
        "case22_magic_cell",
        [
            "def compute_value(x):\n    return x * 2",
            "%time result = compute(3)",
            "assert result == 6",
        ],
        [[("replace", "c1", "%time result = compute_value(3)")]],
        "verified",
        "fixed",
        1,
        why="a renamed function used inside a %time magic",
    ),
    Case(
        "case23_syntax_error",
        ["def f(x:\n    return x + 1", "assert f(1) == 2"],
        [[("replace", "c0", "def f(x):\n    return x + 1")]],
        "verified",
        "fixed",
        1,
        why="a SyntaxError",
    ),
    Case(
        "case24_zero_division",
        ["hits, total = 3, 0", "rate = hits / total", "print(f'{rate:.2f}')"],
        [[("replace", "c1", "rate = hits / total if total else 0.0")]],
        "verified",
        "fixed",
        1,
        why="ZeroDivisionError",
    ),
    Case(
        "case25_str_plus_int",
        ["count = 5", "label = 'Total: ' + count\nprint(label)"],
        [[("replace", "c1", "label = f'Total: {count}'\nprint(label)")]],
        "verified",
        "fixed",
        1,
        why="TypeError: str + int",
    ),
    Case(
        "case26_index_off_by_one",
        ["xs = [3, 1, 4, 1, 5]", "last = xs[len(xs)]", "assert last == 5"],
        [[("replace", "c1", "last = xs[len(xs) - 1]")]],
        "verified",
        "fixed",
        1,
        why="IndexError: one past the end",
    ),
    Case(
        "case27_dict_key",
        ["config = {'lr': 0.1, 'epochs': 3}", "steps = config['learning_rate'] * config['epochs']"],
        [[("replace", "c1", "steps = config['lr'] * config['epochs']")]],
        "verified",
        "fixed",
        1,
        why="KeyError: a renamed setting",
    ),
    Case(
        "case28_applymap_removed",
        [
            "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2], 'b': [3, 4]})",
            "doubled = df.applymap(lambda v: v * 2)",
            "assert int(doubled.values.sum()) == 20",
        ],
        [[("replace", "c1", "doubled = df.map(lambda v: v * 2)")]],
        "verified",
        "fixed",
        1,
        why="DataFrame.applymap was removed in pandas 3",
    ),
    Case(
        "case29_second_error_later",
        ["a = 1", "b = a + c", "print(b)", "d = undefined_later * 2", "print(d)"],
        [
            [("replace", "c1", "c = 1\nb = a + c")],
            [("replace", "c3", "d = b * 2")],
        ],
        "verified",
        "fixed",
        2,
        ["error", "verified"],
        why="the first fix works, a later independent error shows: a second attempt",
    ),
    Case(
        "case30_bad_first_patch",
        ["vals = [1, 2, 3]", "avg = sum(vals) / len(val)", "assert avg == 2"],
        [
            [("replace", "c1", "avg = sum(vals) / len(vals")],
            [("replace", "c1", "avg = sum(vals) / len(vals)")],
        ],
        "verified",
        "fixed",
        2,
        ["error", "verified"],
        why="the first patch has a syntax error: the loop tries again",
    ),
    Case(
        "case31_csv_wrong_column",
        [
            "import pandas as pd\nsales = pd.read_csv('case31_sales.csv')",
            "by_region = sales.groupby('Region')['amount'].sum()",
            "assert by_region['north'] == 30",
        ],
        [[("replace", "c1", "by_region = sales.groupby('region')['amount'].sum()")]],
        "verified",
        "fixed",
        1,
        files={"case31_sales.csv": "region,amount\nnorth,10\nsouth,5\nnorth,20\n"},
        why="a data file's column named wrong",
    ),
    Case(
        "case32_token_budget",
        ["x = 5", "y = x / 0", "assert y == 1"],
        [[("replace", "c1", "y = x / 2")], [("replace", "c1", "y = x / 5")]],
        "not_verified",
        "token_budget",
        1,
        ["check_failed"],
        group="budget",
        why="the token budget is spent after the first attempt",
    ),
    Case(
        "case33_inserted_import",
        ["import json", "data = json.loads('[1, 2]')\nprint(statistics.mean(data))"],
        [[("insert", "c0", "import statistics")]],
        "verified",
        "fixed",
        1,
        why="a missing import fixed by inserting a cell",
    ),
]

#: The options each group's command adds (a policy file is written for each).
GROUPS: dict[str, dict[str, Any]] = {
    "main": {"policy": {"approvals": {"default": "approve"}}, "args": []},
    "earlier": {"policy": {"approvals": {"default": "approve"}}, "args": ["--cell", "c3"]},
    "timeout": {
        "policy": {"approvals": {"default": "approve"}},
        "args": ["--execute-timeout", "3"],
    },
    "reject": {"policy": {"approvals": {"default": "reject"}}, "args": []},
    "deny": {"policy": {"tools": {"replace_cell": "deny", "insert_cell": "deny"}}, "args": []},
    "budget": {"policy": {"approvals": {"default": "approve"}}, "args": ["--token-budget", "1"]},
}


def notebook(case: Case) -> dict[str, Any]:
    cells = []
    for i, cell in enumerate(case.cells):
        spec: dict[str, Any] = {"source": cell} if isinstance(cell, str) else dict(cell)
        cells.append(
            {
                "id": f"c{i}",
                "cell_type": "code",
                "metadata": spec.get("metadata", {}),
                "source": spec["source"],
                "outputs": spec.get("outputs", []),
                "execution_count": spec.get("execution_count"),
            }
        )
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {
                "name": "aiide-python",
                "display_name": "Python 3 (sandboxed)",
                "language": "python",
            }
        },
        "cells": cells,
    }


def replies(case: Case) -> list[dict[str, Any]]:
    """The fake's replies for the case, as JSON (``POST /_fake/script?key=``)."""
    out: list[dict[str, Any]] = []
    for n, turn in enumerate(case.turns):
        if isinstance(turn, str):
            out.append({"text": turn})
            continue
        tools = []
        for k, (op, cell, source) in enumerate(turn):
            call = f"toolu_{case.name[:6]}{n}{k}"
            if op == "replace":
                tools.append(
                    {
                        "name": "replace_cell",
                        "input": {"cell_id": cell, "source": source},
                        "id": call,
                    }
                )
            else:
                tools.append(
                    {
                        "name": "insert_cell",
                        "input": {"after_id": cell, "source": source},
                        "id": call,
                    }
                )
        out.append({"tools": tools})
        out.append({"text": f"Attempt {n + 1}: changed {', '.join(e[1] for e in turn)}."})
    return out
