"""The Docker kernel image: tagged by its inputs, built once, able to run the host's venv.

The tag tests need no Docker. The others need a reachable daemon and are skipped with the
reason when there is none, except under CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from optional import require

import aiide_kernel.image as image_pkg
from aiide_kernel.image import (
    IMAGE_REPOSITORY,
    PACKAGES,
    SUITE,
    ImageBuildError,
    ensure_image,
    image_present,
    image_tag,
    inputs_hash,
)
from aiide_kernel.image.progress import Reporter
from aiide_kernel.image.rootfs import DebootstrapOutput

SOURCE_DIR = Path(image_pkg.__file__).parent


def _unavailable(msg: str) -> None:
    require("docker", False, msg)


@pytest.fixture
def source_copy(tmp_path: Path) -> Path:
    for path in SOURCE_DIR.glob("*.py"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


# --- the tag (no Docker) ---------------------------------------------------------------


def test_tag_is_stable_for_unchanged_inputs(source_copy: Path) -> None:
    assert inputs_hash() == inputs_hash()
    assert inputs_hash(source_dir=source_copy) == inputs_hash()
    assert image_tag() == image_tag() == f"{IMAGE_REPOSITORY}:{inputs_hash()[:12]}"
    assert re.fullmatch(r"aiide-kernel:[0-9a-f]{12}", image_tag())


def test_tag_ignores_package_order_and_duplicates() -> None:
    shuffled = [*reversed(PACKAGES), PACKAGES[0]]
    assert inputs_hash(packages=shuffled) == inputs_hash()


def test_tag_changes_when_the_package_list_changes() -> None:
    assert inputs_hash(packages=[*PACKAGES, "libxml2"]) != inputs_hash()
    assert inputs_hash(packages=PACKAGES[1:]) != inputs_hash()


def test_tag_changes_when_the_suite_changes() -> None:
    assert SUITE == "bookworm"
    assert inputs_hash(suite="trixie") != inputs_hash()


def test_tag_changes_when_the_source_changes(source_copy: Path) -> None:
    rootfs = source_copy / "rootfs.py"
    rootfs.write_text(rootfs.read_text() + "\n# a change\n")
    assert inputs_hash(source_dir=source_copy) != inputs_hash()


def test_tag_ignores_files_that_are_not_module_source(source_copy: Path) -> None:
    (source_copy / "__pycache__").mkdir()
    (source_copy / "__pycache__" / "rootfs.cpython-311.pyc").write_bytes(b"\0")
    (source_copy / "notes.txt").write_text("not an input")
    assert inputs_hash(source_dir=source_copy) == inputs_hash()


# --- the built image (Docker) ----------------------------------------------------------


@pytest.fixture(scope="module")
def docker_client() -> Any:
    try:
        import docker

        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as e:
        _unavailable(f"the Docker daemon is not reachable ({type(e).__name__}: {e})")
    return client


@pytest.fixture(scope="module")
def built_image(docker_client: Any) -> str:
    """The current image; built here if `make image` did not already (≈30 s, needs root)."""
    try:
        return ensure_image(docker_client, progress=False)
    except ImageBuildError as e:
        _unavailable(f"the kernel image cannot be built here: {e}")
        raise


def _run(
    client: Any,
    tag: str,
    command: list[str],
    volumes: dict[str, dict[str, str]],
    user: str = "64999:64999",
) -> str:
    """One command in the image, locked down as the Docker backend runs kernels; its output.

    Attached before it starts: reading logs after a fast exit can come back empty.
    """
    container = client.containers.create(
        tag,
        command,
        user=user,
        volumes=volumes,
        network_mode="none",
        read_only=True,
        tmpfs={"/tmp": "size=64m"},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
    )
    try:
        stream = container.attach(stdout=True, stderr=True, stream=True, logs=True)
        container.start()
        out = b"".join(stream).decode()
        status = container.wait(timeout=60)["StatusCode"]
    finally:
        container.remove(force=True)
    assert status == 0, f"{command} exited {status}: {out}"
    return out


@pytest.mark.docker
def test_ensure_image_returns_at_once_when_the_image_exists(
    docker_client: Any, built_image: str
) -> None:
    images_before = {i.id for i in docker_client.images.list()}
    tag = ensure_image(docker_client, progress=True)
    assert tag == built_image == image_tag()
    assert image_present(docker_client)
    assert {i.id for i in docker_client.images.list()} == images_before  # nothing rebuilt


@pytest.mark.docker
def test_host_venv_imports_ipykernel_inside_the_image(docker_client: Any, built_image: str) -> None:
    prefixes = {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}
    if any(p == "/usr" or p.startswith("/usr/") for p in prefixes):
        pytest.skip("this Python lives in /usr, which the image's own /usr would shadow")
    volumes = {p: {"bind": p, "mode": "ro"} for p in prefixes}
    code = "import ipykernel, ssl, sqlite3, ctypes, zmq, lzma, bz2, readline, uuid; print('ok')"
    out = _run(docker_client, built_image, [sys.executable, "-c", code], volumes)
    assert out.strip() == "ok"


@pytest.mark.docker
@pytest.mark.parametrize("uid", [64999, 1000])
def test_any_uid_reaches_a_bind_mount_at_any_path(
    docker_client: Any, built_image: str, tmp_path: Path, uid: int
) -> None:
    # Under /root (where pyenv lives) and under directories Debian makes 0700.
    targets = ["/root/.pyenv/x/y", "/etc/ssl/private/m", "/var/cache/ldconfig/m", "/opt/a/b/c"]
    volumes = {}
    for i, target in enumerate(targets):
        source = tmp_path / str(i)
        source.mkdir(mode=0o755)
        (source / "f").write_text("reached")
        (source / "f").chmod(0o644)
        volumes[str(source)] = {"bind": target, "mode": "ro"}
    out = _run(
        docker_client,
        built_image,
        ["/bin/cat", *(f"{t}/f" for t in targets)],
        volumes,
        user=f"{uid}:{uid}",
    )
    assert out == "reached" * len(targets)


# --- build progress (no Docker) --------------------------------------------------------


class _Recorder(Reporter):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def start(self, key: str, description: str, total: float | None = None, unit: str = "") -> None:
        self.events.append(("start", key))

    def finish(self, key: str, summary: str = "") -> None:
        self.events.append(("finish", f"{key}: {summary}"))


def test_debootstrap_output_advances_the_stages() -> None:
    recorder = _Recorder()
    output = DebootstrapOutput(recorder)
    for line in """I: Retrieving InRelease
I: Retrieving Packages
I: Validating Packages
I: Retrieving adduser 3.134
I: Validating adduser 3.134
I: Validating bsdutils 1:2.38.1-5+deb12u3
I: Extracting adduser...
I: Installing core packages...
I: Unpacking required packages...
I: Unpacking zlib1g:amd64...
I: Configuring adduser...
I: Base system installed successfully.""".splitlines():
        output.feed(line + "\n")
    output.close()
    assert output.packages == [("adduser", "3.134"), ("bsdutils", "1:2.38.1-5+deb12u3")]
    assert recorder.events == [
        ("start", "resolve"),
        ("finish", "resolve: package index fetched"),
        ("start", "download"),
        ("finish", "download: 2 packages"),
        ("start", "extract"),
        ("finish", "extract: 1 essential packages"),
        ("start", "install"),
        ("finish", "install: 2 packages"),
    ]
