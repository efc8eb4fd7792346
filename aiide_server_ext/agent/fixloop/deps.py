"""Which cells depend on which: by the names each defines and uses, not by position.

A cell is parsed with the stdlib ``ast`` after IPython's input transformer has turned its
magics and shell escapes into Python (``%time x = f()`` still uses ``f``), so a notebook
full of ``%matplotlib`` and ``!pip`` lines parses. A cell that does not parse even then
defines nothing and is said to use every name (safest: it is re-run with everything).
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field
from typing import Any

from ..patches import source_of

#: Magics whose argument (line) or body (cell) is Python run in the user namespace.
CODE_MAGICS = frozenset({"time", "timeit", "prun", "capture", "debug"})
MAGIC_CALLS = frozenset({"run_line_magic", "run_cell_magic"})
BUILTINS = frozenset(dir(builtins)) | {"get_ipython", "display", "In", "Out", "_"}


@dataclass(frozen=True)
class CellNames:
    defines: frozenset[str] = frozenset()
    uses: frozenset[str] = frozenset()
    #: The source did not parse: treat it as using everything.
    opaque: bool = False


def _python(source: str) -> str:
    """The cell as IPython would run it (magics become ``get_ipython()`` calls)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager  # lazy: IPython is big
    except ImportError:  # pragma: no cover - IPython comes with ipykernel
        return source
    try:
        return str(TransformerManager().transform_cell(source))  # type: ignore[no-untyped-call]
    except Exception:  # a transformer choking on odd input: the plain source then
        return source


class _Visitor(ast.NodeVisitor):
    def __init__(self) -> None:
        self.defines: set[str] = set()
        self.uses: set[str] = set()

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            if node.id not in self.defines:
                self.uses.add(node.id)
        else:
            self.defines.add(node.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        """The value is read before the targets are written (``df = df.dropna()``)."""
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        """``n += 1`` reads n before it writes it."""
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            if node.target.id not in self.defines:
                self.uses.add(node.target.id)
            self.defines.add(node.target.id)
        else:
            self.visit(node.target)

    def _define(self, name: str) -> None:
        self.defines.add(name)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        for d in node.decorator_list:
            self.visit(d)
        self._body_uses(node)
        self._define(node.name)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for part in [*node.bases, *node.decorator_list]:
            self.visit(part)
        self._body_uses(node)
        self._define(node.name)

    def _body_uses(self, node: ast.AST) -> None:
        """A function's free names are used when it is called: count them as uses of the
        cell (a later cell calling it needs them defined)."""
        inner = _Visitor()
        body = getattr(node, "body", [])
        args = getattr(node, "args", None)
        if args is not None:
            for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                inner.defines.add(a.arg)
            for extra in (args.vararg, args.kwarg):
                if extra is not None:
                    inner.defines.add(extra.arg)
            for default in [*args.defaults, *args.kw_defaults]:
                if default is not None:
                    self.visit(default)
        for stmt in body:
            inner.visit(stmt)
        self.uses |= inner.uses - self.defines

    def visit_Call(self, node: ast.Call) -> None:
        """``%time x = f()`` / ``%%time`` run Python: their code counts as the cell's."""
        self.generic_visit(node)
        f = node.func
        if not (isinstance(f, ast.Attribute) and f.attr in MAGIC_CALLS):
            return
        consts = [a.value for a in node.args if isinstance(a, ast.Constant)]
        if len(consts) < 2 or consts[0] not in CODE_MAGICS or not isinstance(consts[-1], str):
            return
        try:
            tree = ast.parse(consts[-1])
        except SyntaxError:
            return
        for stmt in tree.body:
            self.visit(stmt)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._define((alias.asname or alias.name).split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self._define(alias.asname or alias.name)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        # ``df.x = 1`` / ``df["a"] = 1`` change df: a use and a (re)definition
        self.generic_visit(node)
        if isinstance(node.ctx, ast.Store) and isinstance(node.value, ast.Name):
            self.defines.add(node.value.id)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        self.generic_visit(node)
        if isinstance(node.ctx, ast.Store) and isinstance(node.value, ast.Name):
            self.uses.add(node.value.id)
            self.defines.add(node.value.id)


def cell_names(source: str) -> CellNames:
    """The names a cell defines and the (non-builtin) names it uses before defining."""
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return CellNames(opaque=True)
    v = _Visitor()
    for stmt in tree.body:
        v.visit(stmt)
    return CellNames(frozenset(v.defines), frozenset(v.uses - BUILTINS))


@dataclass
class Graph:
    """The code cells of a notebook in order, with their names."""

    order: list[str] = field(default_factory=list)
    names: dict[str, CellNames] = field(default_factory=dict)

    @classmethod
    def of(cls, nb: dict[str, Any]) -> Graph:
        g = cls()
        for cell in nb.get("cells", []):
            if cell.get("cell_type") == "code":
                g.order.append(cell["id"])
                g.names[cell["id"]] = cell_names(source_of(cell))
        return g

    def index(self, cell_id: str) -> int:
        return self.order.index(cell_id)

    def downstream(self, roots: set[str]) -> list[str]:
        """The cells after the roots that use, directly or through another such cell, a
        name a root defines; in notebook order (the roots not included)."""
        start = min((self.index(r) for r in roots if r in self.names), default=len(self.order))
        changed: set[str] = set()
        for r in roots:
            if r in self.names:
                changed |= self.names[r].defines
        out: list[str] = []
        for cid in self.order[start + 1 :]:
            if cid in roots:
                continue
            n = self.names[cid]
            if n.opaque or n.uses & changed:
                out.append(cid)
                changed |= n.defines
        return out

    def upstream(self, cell_id: str) -> list[str]:
        """The cells before ``cell_id`` that last defined a name it uses, transitively, in
        notebook order: what a diagnosis shows beside the failing cell."""
        i = self.index(cell_id)
        wanted = set(self.names[cell_id].uses)
        found: list[str] = []
        for cid in reversed(self.order[:i]):
            n = self.names[cid]
            hit = n.defines & wanted
            if hit:
                found.append(cid)
                wanted = (wanted - hit) | n.uses
        return sorted(found, key=self.index)

    def refresh(self, cell_id: str) -> list[str]:
        """The cells before ``cell_id`` that last defined a name it both uses and
        redefines (``n += 1``, ``df = df.dropna()``, ``df["a"] = ...``): a failed or
        interrupted run of the cell may have changed those, so they run again first."""
        if cell_id not in self.names:
            return []
        n = self.names[cell_id]
        wanted = set(n.uses & n.defines)
        found: list[str] = []
        for cid in reversed(self.order[: self.index(cell_id)]):
            hit = self.names[cid].defines & wanted
            if hit:
                found.append(cid)
                wanted -= hit
        return sorted(found, key=self.index)
