"""One code path builds every kernel launch: a sandbox fix made in the recipe reaches
the provisioner's kernels, the warm pool's and the gateway launcher's alike."""

from __future__ import annotations

import ast
import os

import aiide_kernel.provisioner

PACKAGE = os.path.dirname(os.path.abspath(aiide_kernel.provisioner.__file__))
RECIPE = os.path.join("launch", "recipe.py")
#: Only the recipe may assemble these; anything else is a second launch path.
ASSEMBLY = {"LaunchSpec", "RunDir.create", "grant_workspace", "open_workspace", "plan_masks"}


def _calls(path: str) -> set[str]:
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                names.add(func.id)
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                names.add(f"{func.value.id}.{func.attr}")
    return names


def _modules() -> list[str]:
    out = []
    for root, _, files in os.walk(PACKAGE):
        if "image" in root.split(os.sep):
            continue
        out += [os.path.join(root, f) for f in files if f.endswith(".py")]
    return out


def test_only_the_recipe_assembles_a_kernel_launch() -> None:
    offenders = {
        os.path.relpath(path, PACKAGE): sorted(_calls(path) & ASSEMBLY)
        for path in _modules()
        if os.path.relpath(path, PACKAGE) != RECIPE and _calls(path) & ASSEMBLY
    }
    assert offenders == {}, f"kernel launches assembled outside {RECIPE}: {offenders}"


def test_provisioner_pool_and_launcher_all_use_the_recipe() -> None:
    for name in ("provisioner.py", "pool.py", os.path.join("launch", "launcher.py")):
        with open(os.path.join(PACKAGE, name), encoding="utf-8") as f:
            source = f.read()
        assert "LaunchRecipe" in source, name


def test_the_pool_never_reads_the_provisioners_private_state() -> None:
    with open(os.path.join(PACKAGE, "pool.py"), encoding="utf-8") as f:
        source = f.read()
    assert "provisioner._" not in source
    assert "SandboxProvisioner" not in source
