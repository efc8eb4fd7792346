"""Every dependency points down: the project's layers, written down once, held against the
real imports of every module (module level, inside functions and methods, relative ones
resolved). Imports under ``if TYPE_CHECKING:`` are left out: they never run, so they make
no cycle and load nothing (annotations only).

docs/architecture.md draws these layers; change them here and there together.
"""

from __future__ import annotations

import ast
import fnmatch
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("aiide_server_ext", "aiide_kernel")

#: Bottom to top. A module may import its own layer and the layers below it, never one
#: above. Names are module paths below ``aiide_server_ext`` (``aiide_kernel`` modules by
#: their full name).
LAYERS: tuple[tuple[str, str], ...] = (
    ("contracts", "the seams between parts and small shared helpers; import nothing above"),
    ("storage", "the SQL stores' common ground (sqlite, PostgreSQL) and StoreError"),
    ("executor", "sandboxed kernels: provisioner, pool, launch recipe, backends"),
    ("knowledge", "the knowledge index (embeddings, chunking, the index service)"),
    ("gateway", "who calls, what they may do, what it costs"),
    ("agent", "the assistant: engine, router, providers, tools, stores"),
    ("agent front ends", "the agent run headless, and MCP in both directions"),
    ("classroom", "the course rules the broker and the single-user part both read"),
    ("broker", "the key broker's service and handlers (its own process)"),
    ("http", "the server's tornado handlers and their base"),
    ("parts", "extension parts: each assembles its services and routes"),
    ("apps", "entry points: the server extension, the CLIs, the broker app"),
)

#: Module pattern -> layer. The first pattern that matches wins, so the roles that cut
#: across features (handlers, parts, CLIs) come before the feature folders.
RULES: tuple[tuple[str, str], ...] = (
    ("__init__", "apps"),  # aiide_server_ext itself: the jupyter_server extension
    ("app", "apps"),
    ("cli", "apps"),
    ("*.cli", "apps"),
    ("*.__main__", "apps"),
    ("hub.broker.app", "apps"),
    ("hub.broker", "broker"),  # its own process: its handlers are its own
    ("hub.broker.*", "broker"),
    ("hub", "parts"),  # the single-user server extension's entry points
    ("hub.singleuser", "parts"),
    ("hub.singleuser.*", "parts"),
    ("*.part", "parts"),
    ("extension_parts", "contracts"),  # ExtensionPart, the base every part derives from
    ("api_handler", "http"),
    ("handlers", "http"),
    ("*.handlers", "http"),
    ("hub.*", "classroom"),
    ("headless", "agent front ends"),
    ("headless.*", "agent front ends"),
    ("mcp", "agent front ends"),
    ("mcp.*", "agent front ends"),
    ("agent", "agent"),
    ("agent.*", "agent"),
    ("gateway", "gateway"),
    ("gateway.*", "gateway"),
    ("knowledge", "knowledge"),
    ("knowledge.*", "knowledge"),
    ("aiide_kernel", "executor"),
    ("aiide_kernel.*", "executor"),
    ("kernelspecs", "executor"),
    ("output_cap", "executor"),
    ("status", "executor"),
    ("stores", "storage"),
    ("stores.*", "storage"),
    ("seams", "contracts"),
    ("json_api", "contracts"),
    ("_version", "contracts"),
    ("csp", "contracts"),
    ("fsguard", "contracts"),
    ("redis_window", "contracts"),
    ("safe_regex", "contracts"),
    ("assignments", "contracts"),
    ("examples", "contracts"),
)

#: Parts that meet only through ``seams.py``, whatever their layers: the gateway stays
#: optional (without it, ``OpenGate`` admits everyone), and it knows nothing of its users.
APART: tuple[tuple[str, str], ...] = (
    ("agent.*", "gateway.*"),
    ("knowledge.*", "gateway.*"),
    ("gateway.*", "agent.*"),
    ("gateway.*", "knowledge.*"),
)

#: Known violations being removed by work in progress: (importer, imported). None left (the
#: agent's one assembly and the engine<->steps protocol landed); an entry that no longer
#: matches a real import fails the test, so it cannot go stale.
ALLOWED: tuple[tuple[str, str], ...] = ()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "labextension" not in path.relative_to(ROOT).parts:
                found[_module_name(path)] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child
            else:
                stack.append(child)


def _project_module(name: str) -> str | None:
    """The project module that ``name`` (a module, or a name inside one) loads."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports_of(module: str) -> set[str]:
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            targets = [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            imported = _project_module(target)
            if imported is not None and imported != module:
                found.add(imported)
    return found


def _graph() -> dict[str, set[str]]:
    return {module: _imports_of(module) for module in MODULES}


def _short(module: str) -> str:
    return module.removeprefix("aiide_server_ext.") if module != "aiide_server_ext" else "__init__"


def layer_of(module: str) -> str:
    short = _short(module)
    for pattern, layer in RULES:
        if fnmatch.fnmatchcase(short, pattern):
            return layer
    raise AssertionError(f"{module} is in no layer: add it to RULES in {__file__}")


RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _allowed(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph less the allowed pairs."""
    pairs = {(f"aiide_server_ext.{a}", f"aiide_server_ext.{b}") for a, b in ALLOWED}
    return {m: {t for t in out if (m, t) not in pairs} for m, out in graph.items()}


def test_the_graph_is_read_from_the_code() -> None:
    """The walk sees what it must: function-level and relative imports, TYPE_CHECKING not."""
    graph = _graph()
    # A relative import of a subpackage's module, and one inside a method (make_app).
    assert "aiide_kernel.launch.recipe" in graph["aiide_kernel.pool"]
    assert "aiide_server_ext.hub.broker.relay" in graph["aiide_server_ext.hub.broker.app"]
    assert "aiide_server_ext.stores.errors" in graph["aiide_server_ext.stores.postgres"]
    # health.py names Broker for its annotations only.
    assert "aiide_server_ext.hub.broker.service" not in graph["aiide_server_ext.hub.broker.health"]


def test_every_module_has_a_layer() -> None:
    missing = []
    for module in MODULES:
        try:
            layer_of(module)
        except AssertionError as e:
            missing.append(str(e))
    assert missing == []
    assert {layer for _, layer in RULES} <= set(RANK)


def test_no_import_cycle() -> None:
    cycles = _cycles(_allowed(_graph()))
    assert cycles == [], "import cycles among project modules:\n" + "\n".join(
        " <-> ".join(_short(m) for m in cycle) for cycle in cycles
    )


def test_no_layer_imports_a_higher_one() -> None:
    upward = sorted(
        f"{_short(m)} ({layer_of(m)}) imports {_short(t)} ({layer_of(t)})"
        for m, out in _allowed(_graph()).items()
        for t in out
        if RANK[layer_of(t)] > RANK[layer_of(m)]
    )
    assert upward == [], "imports that point up:\n" + "\n".join(upward)


def test_parts_that_meet_through_seams_do_not_import_each_other() -> None:
    crossing = sorted(
        f"{_short(m)} imports {_short(t)}"
        for m, out in _allowed(_graph()).items()
        for t in out
        for a, b in APART
        if fnmatch.fnmatchcase(_short(m), a) and fnmatch.fnmatchcase(_short(t), b)
    )
    assert crossing == [], "imports across a seam:\n" + "\n".join(crossing)


def test_the_allow_list_names_real_imports() -> None:
    graph = _graph()
    stale = [
        (a, b)
        for a, b in ALLOWED
        if f"aiide_server_ext.{b}" not in graph.get(f"aiide_server_ext.{a}", set())
    ]
    assert stale == [], f"no longer imported, remove from ALLOWED: {stale}"
