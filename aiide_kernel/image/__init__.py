"""The local Docker image that sandboxed kernels run in.

No registry is needed: the image is a minimal Debian userland built with ``debootstrap``
and ``docker import``. It holds no Python: the kernel runs the host's environment,
bind-mounted read-only at the same path, so the image only carries the shared libraries
such a Python and common wheels link against.

The tag is a hash of the build inputs (this package's source, the package list, the
Debian suite), so the daemon's image store is the build cache: an unchanged tree never
rebuilds, and a change to any input builds a new tag beside the old one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import rootfs
from .errors import ImageBuildError
from .progress import Reporter, make_reporter

if TYPE_CHECKING:
    from docker import DockerClient

__all__ = [
    "IMAGE_REPOSITORY",
    "INPUTS_LABEL",
    "PACKAGES",
    "SUITE",
    "ImageBuildError",
    "ensure_image",
    "image_present",
    "image_tag",
    "inputs_hash",
    "prune_old_images",
]

IMAGE_REPOSITORY = "aiide-kernel"
SUITE = "bookworm"
INPUTS_LABEL = "org.aiide.image.inputs"
# Beyond minbase: what the host's Python (ldd of the interpreter and of lib-dynload's
# _ssl, _hashlib, _sqlite3, _ctypes, _lzma, _bz2, _curses, readline, _uuid, _crypt, nis)
# and common manylinux wheels (libstdc++, libgomp) load, plus the data files they read:
# CA certificates, time zones, a font, /etc/services and /etc/mime.types.
# _tkinter is left out on purpose: Tk needs an X display, which a sandbox never has.
PACKAGES: tuple[str, ...] = (
    "ca-certificates",
    "fonts-dejavu-core",
    "libbz2-1.0",
    "libcrypt1",
    "libexpat1",
    "libffi8",
    "libgdbm6",
    "libgomp1",
    "liblzma5",
    "libncursesw6",
    "libnsl2",
    "libreadline8",
    "libsqlite3-0",
    "libssl3",
    "libstdc++6",
    "libtinfo6",
    "libuuid1",
    "media-types",
    "netbase",
    "tzdata",
    "zlib1g",
)
_CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_HERE = Path(__file__).resolve().parent


def inputs_hash(
    *, suite: str = SUITE, packages: Iterable[str] = PACKAGES, source_dir: Path | None = None
) -> str:
    """SHA-256 over everything that decides the image's content."""
    h = hashlib.sha256()

    def put(label: str, data: bytes) -> None:
        h.update(f"{label}\0{len(data)}\0".encode())
        h.update(data)

    put("suite", suite.encode())
    put("packages", "\n".join(sorted(set(packages))).encode())
    for path in sorted((source_dir or _HERE).glob("*.py")):
        put(f"source/{path.name}", path.read_bytes())
    return h.hexdigest()


@lru_cache(maxsize=1)
def _current_hash() -> str:
    return inputs_hash()


def image_tag() -> str:
    """``aiide-kernel:<12 hex>``, the tag the current source builds."""
    return f"{IMAGE_REPOSITORY}:{_current_hash()[:12]}"


def image_present(client: DockerClient) -> bool:
    """Whether the daemon has the image for the current inputs."""
    from docker.errors import ImageNotFound

    try:
        image = client.images.get(image_tag())
    except ImageNotFound:
        return False
    labels = (image.attrs.get("Config") or {}).get("Labels") or {}
    return bool(labels.get(INPUTS_LABEL) == _current_hash())


def _connect() -> DockerClient:
    try:
        import docker
    except ImportError as e:
        raise ImageBuildError(
            "the docker Python package is not installed: pip install 'aiide[docker]'"
        ) from e
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as e:
        fix = "install and start it: sudo apt-get install docker.io && sudo systemctl start docker"
        if "Permission denied" in str(e) or "PermissionError" in repr(e):
            fix = "add your user to the 'docker' group: sudo usermod -aG docker $USER, log in again"
        raise ImageBuildError(
            f"the Docker daemon is not reachable ({type(e).__name__}: {e}); {fix}"
        ) from e
    return client


def ensure_image(
    client: DockerClient | None = None, *, progress: bool = True, rebuild: bool = False
) -> str:
    """Build the kernel image unless the daemon already has it; return its tag.

    ``progress`` shows the build (a live display on a terminal, one line per stage
    otherwise); an existing image returns at once, silently.
    """
    tag = image_tag()
    if client is None:
        client = _connect()
    if not rebuild and image_present(client):
        return tag
    tool = rootfs.check_host()
    with _build_lock():
        if not rebuild and image_present(client):  # built meanwhile by another process
            return tag
        reporter = make_reporter(progress)
        try:
            _build(client, tool, tag, reporter)
        finally:
            reporter.close()
    return tag


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One build at a time per user (parallel test workers all call ``ensure_image``)."""
    cache = rootfs.deb_cache_dir(SUITE)
    if cache is None:
        yield
        return
    fd = os.open(
        cache.parent / "image-build.lock",
        os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o600,
    )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _build_parent() -> str:
    # /var/tmp is disk-backed and rarely nodev/noexec, which the chroot needs.
    configured = os.environ.get("AIIDE_IMAGE_BUILD_DIR")
    if configured:
        return configured
    var_tmp = "/var/tmp"  # only a parent: mkdtemp below makes a private directory
    return var_tmp if os.access(var_tmp, os.W_OK) else tempfile.gettempdir()


def _build(client: DockerClient, tool: str, tag: str, reporter: Reporter) -> None:
    t0 = time.monotonic()
    source = rootfs.mirror()
    reporter.begin(f"Building the kernel image {tag}: Debian {SUITE} from {source}, about a minute")
    old_id = _image_id(client, tag)
    workdir = Path(tempfile.mkdtemp(prefix="aiide-image-", dir=_build_parent()))
    try:
        root = workdir / "rootfs"
        cache = rootfs.deb_cache_dir(SUITE)
        used = rootfs.debootstrap(
            tool,
            root,
            suite=SUITE,
            packages=PACKAGES,
            source=source,
            reporter=reporter,
            cache_dir=cache,
        )
        reporter.start("trim", "Trimming the root filesystem")
        rootfs.trim(root)
        rootfs.open_up(root)
        size = rootfs.tar_size(root)
        reporter.finish("trim", f"{size / 1e6:.0f} MB left")
        image_id = _import(client, root, size, reporter)
        repository, _, version = tag.partition(":")
        client.api.tag(image_id, repository, version, force=True)
        if cache is not None:
            rootfs.prune_deb_cache(cache, used)
    finally:
        rootfs.remove_tree(workdir)
    if old_id and old_id != image_id:  # --rebuild: the previous build is now untagged
        with contextlib.suppress(Exception):  # still used by a container: leave it
            client.images.remove(old_id)
    reporter.end(f"Built {tag} in {time.monotonic() - t0:.0f} s")


def _image_id(client: DockerClient, ref: str) -> str | None:
    from docker.errors import ImageNotFound

    try:
        return str(client.images.get(ref).id)
    except ImageNotFound:
        return None


def _import(client: DockerClient, root: Path, size: int, reporter: Reporter) -> str:
    """Stream ``root`` into ``docker import``; the new image's id (not yet tagged).

    Tagging only after tar succeeded means a truncated stream never becomes the image.
    """
    changes = [
        "USER 65534:65534",
        "WORKDIR /tmp",
        "ENV LANG=C.UTF-8",
        f"ENV PATH={_CONTAINER_PATH}",
        f"LABEL {INPUTS_LABEL}={_current_hash()}",
        f"LABEL org.aiide.image.suite={SUITE}",
        'CMD ["/bin/sh"]',
    ]
    reporter.start("import", "Importing into Docker", size, unit="bytes")
    with tempfile.TemporaryFile() as errors:
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "--one-file-system", "-C", str(root), "-c", "."],
            stdout=subprocess.PIPE,
            stderr=errors,
        )

        def chunks() -> Iterator[bytes]:
            assert tar.stdout is not None
            while data := tar.stdout.read(1 << 20):
                reporter.update("import", advance=len(data))
                yield data

        try:
            result = client.api.import_image(src=chunks(), changes=changes, stream_src=True)
        finally:
            if tar.poll() is None:
                tar.kill()
            rc = tar.wait()
        errors.seek(0)
        tar_errors = errors.read().decode(errors="replace").strip()
    image_id = _import_result(result)
    if rc != 0:
        with contextlib.suppress(Exception):
            client.images.remove(image_id)
        raise ImageBuildError(f"tar of the root filesystem failed (exit {rc}): {tar_errors}")
    reporter.finish("import", f"image {image_id.removeprefix('sha256:')[:12]}")
    return image_id


def _import_result(result: Any) -> str:
    lines = [json.loads(x) for x in str(result).splitlines() if x.strip()]
    for message in lines:
        if "error" in message:
            raise ImageBuildError(f"docker import failed: {message['error']}")
    status = str(lines[-1].get("status", "")) if lines else ""
    if not status.startswith("sha256:"):
        raise ImageBuildError(f"docker import returned no image id: {result!r}")
    return status


def prune_old_images(client: DockerClient) -> list[str]:
    """Remove aiide-kernel images other than the current tag; the references removed.

    Images still used by a container are kept (Docker refuses; we do not force).
    """
    from docker.errors import APIError

    current = image_tag()
    removed: list[str] = []
    for image in client.images.list(name=IMAGE_REPOSITORY):
        for ref in image.tags:
            if ref.startswith(f"{IMAGE_REPOSITORY}:") and ref != current:
                with contextlib.suppress(APIError):
                    client.images.remove(ref)
                    removed.append(ref)
    # Untagged leftovers of --rebuild carry our label but no tag.
    for image in client.images.list(filters={"dangling": True, "label": INPUTS_LABEL}):
        with contextlib.suppress(APIError):
            client.images.remove(str(image.id))
            removed.append(str(image.id))
    return removed
