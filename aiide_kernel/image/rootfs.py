"""The image's root filesystem: a minimal Debian from ``debootstrap``, trimmed for a
read-only sandbox.

The kernel runs the host's Python, bind-mounted at the same path, so the image needs no
Python of its own: only the C libraries that a Python and common wheels link against.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
from collections import deque
from pathlib import Path

from .errors import ImageBuildError
from .progress import Reporter

DEFAULT_MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# debootstrap and the tools it calls live in sbin, which a user's PATH may lack.
_SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Release files and package indexes, not packages: they are not counted.
_INDEXES = {"InRelease", "Release", "Release.gpg", "Packages"}
_PACKAGE_LINE = re.compile(r"^I: (Retrieving|Validating) (\S+) (\S+)\s*$")
_STEP_LINE = re.compile(r"^I: (Extracting|Unpacking|Configuring) (\S+?)(?::\w+)?\.\.\.\s*$")


def mirror() -> str:
    return os.environ.get("AIIDE_DEBIAN_MIRROR") or DEFAULT_MIRROR


def _which(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + _SEARCH_PATH)


def check_host() -> str:
    """Everything the build needs from the host, all problems at once; the debootstrap path."""
    problems: list[str] = []
    debootstrap = _which("debootstrap")
    if not sys.platform.startswith("linux"):
        problems.append("the kernel image is built with debootstrap, which needs Linux")
    elif debootstrap is None:
        problems.append("debootstrap is not installed: sudo apt-get install debootstrap")
    elif not os.path.exists(KEYRING):
        problems.append(
            "the Debian archive keyring is missing (needed to verify packages): "
            "sudo apt-get install debian-archive-keyring"
        )
    if _which("tar") is None:
        problems.append("tar is not installed: sudo apt-get install tar")
    if sys.platform.startswith("linux") and os.geteuid() != 0:
        problems.append(
            "debootstrap needs root (it chroots and creates device nodes): build the image "
            f"once with  sudo {shlex.quote(sys.executable)} -m aiide_kernel.image"
        )
    if problems:
        raise ImageBuildError(
            "cannot build the aiide kernel image:\n  - " + "\n  - ".join(problems)
        )
    assert debootstrap is not None
    return debootstrap


class DebootstrapOutput:
    """Turns debootstrap's ``I:`` lines into stages: download, extract, install.

    The package count is only known once downloading ends; it then sizes the later bars.
    """

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.stage = "resolve"
        self.packages: list[tuple[str, str]] = []
        self.extracted = 0
        reporter.start("resolve", "Resolving packages")

    def _enter(self, stage: str, description: str, total: float | None) -> None:
        if self.stage == stage:
            return
        self.reporter.finish(self.stage, self._summary())
        self.stage = stage
        self.reporter.start(stage, description, total)

    def _summary(self) -> str:
        if self.stage == "resolve":
            return "package index fetched"
        if self.stage == "extract":
            return f"{self.extracted} essential packages"
        return f"{len(self.packages)} packages"

    def feed(self, line: str) -> None:
        line = line.rstrip()
        if m := _PACKAGE_LINE.match(line):
            verb, name, version = m.groups()
            if name in _INDEXES:
                return
            self._enter("download", "Downloading packages", None)
            if verb == "Retrieving":
                self.reporter.update("download", detail=name)
            else:  # every package is validated, downloaded now or found in the cache
                self.packages.append((name, version))
                self.reporter.update("download", advance=1)
        elif m := _STEP_LINE.match(line):
            verb, name = m.groups()
            count = len(self.packages) or None
            if verb == "Extracting":
                self._enter("extract", "Extracting essential packages", count)
                self.extracted += 1
                self.reporter.update("extract", advance=1, detail=name)
            else:  # "Unpacking the base system..." and the like do not match _STEP_LINE
                self._enter("install", "Installing packages", 2 * count if count else None)
                self.reporter.update("install", advance=1, detail=name)
        elif line.startswith("I: Installing core packages"):
            count = len(self.packages)
            self._enter("install", "Installing packages", 2 * count if count else None)
        elif line.startswith("I: Base system installed successfully"):
            self.reporter.finish(self.stage, f"{len(self.packages)} packages")
            self.stage = "done"

    def close(self) -> None:
        if self.stage != "done":
            self.reporter.finish(self.stage, "failed")
            self.stage = "done"


def debootstrap(
    tool: str,
    target: Path,
    *,
    suite: str,
    packages: tuple[str, ...],
    source: str,
    reporter: Reporter,
    cache_dir: Path | None,
) -> list[tuple[str, str]]:
    """Run debootstrap into ``target``; the (package, version) pairs it installed."""
    cmd = [tool, "--variant=minbase", "--include=" + ",".join(packages)]
    if cache_dir is not None:
        cmd.append(f"--cache-dir={cache_dir}")
    cmd += [suite, str(target), source]
    env = {
        **os.environ,
        "LC_ALL": "C",
        "LANG": "C",
        "DEBIAN_FRONTEND": "noninteractive",
        "PATH": _SEARCH_PATH,
    }
    output = DebootstrapOutput(reporter)
    tail: deque[str] = deque(maxlen=12)
    # Its own process group, so that stopping it reaches dpkg and maintainer scripts too.
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip())
            output.feed(line)
        rc = proc.wait()
    except BaseException:  # Ctrl-C included: stop the whole chroot build, not just its shell
        _stop_group(proc)
        raise
    finally:
        output.close()
    if rc != 0:
        log = target / "debootstrap" / "debootstrap.log"
        details = list(tail)
        if log.exists():
            lines = log.read_text(errors="replace").splitlines()
            details += ["--- debootstrap.log (end) ---", *lines[-15:]]
        raise ImageBuildError(
            f"debootstrap failed (exit {rc}) building the kernel image from {source}; "
            "check that the mirror is reachable (set AIIDE_DEBIAN_MIRROR to use another):\n"
            + "\n".join("    " + d for d in details)
        )
    return output.packages


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """SIGTERM first: debootstrap's trap then unmounts /proc and /sys from the chroot."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def _clear(directory: Path, keep: tuple[str, ...] = ()) -> None:
    if not directory.is_dir() or directory.is_symlink():
        return
    for entry in directory.iterdir():
        if entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def trim(root: Path) -> None:
    """Drop what a read-only kernel sandbox never reads: apt state, docs, manuals, logs."""
    for sub in (
        "var/cache/apt",
        "var/lib/apt/lists",
        "usr/share/man",
        "usr/share/info",
        "usr/share/lintian",
        "usr/share/linda",
        "var/log",
        "dev",
    ):
        _clear(root / sub)
    _clear(root / "usr/share/locale", keep=("locale.alias",))
    doc = root / "usr/share/doc"
    if doc.is_dir():  # keep each package's copyright notice, as Debian's slim images do
        for package in doc.iterdir():
            if package.is_dir() and not package.is_symlink():
                _clear(package, keep=("copyright",))
    for pattern in (
        "var/cache/debconf/*-old",
        "var/lib/dpkg/*-old",
        "var/cache/ldconfig/aux-cache",
    ):
        for path in root.glob(pattern):
            path.unlink()
    # debootstrap copies the build host's names in: Docker supplies its own at run time.
    for name, text in (
        ("hostname", "sandbox\n"),
        ("resolv.conf", ""),
        ("hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n"),
    ):
        path = root / "etc" / name
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        path.write_text(text)
        path.chmod(0o644)


def open_up(root: Path) -> None:
    """Let any uid traverse every directory, and strip setuid/setgid bits.

    The kernel runs as an arbitrary non-root uid, and the host's Python may be mounted
    anywhere (pyenv puts it under ``/root``), so no directory on the way may stop it.
    setuid programs are useless under ``no-new-privileges``; removing them is belt and
    braces.
    """
    (root / "root").chmod(0o755)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_IXOTH:
                os.chmod(path, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(path, stat.S_IMODE(st.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))


def tar_size(root: Path) -> int:
    """Roughly how many bytes ``tar`` will stream for ``root`` (to size the import bar)."""
    total = 1024
    for dirpath, dirnames, filenames in os.walk(root):
        total += 512 * (len(dirnames) + len(filenames))
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode):
                total += -(-st.st_size // 512) * 512
    return total


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), point)
            if point.startswith(prefix):
                found.append(point)
    return found


def remove_tree(path: Path) -> None:
    """Delete a build directory, first unmounting anything a failed debootstrap left."""
    if not path.exists():
        return
    for point in sorted(_mounts_under(path), reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    left = _mounts_under(path)
    if left:
        raise ImageBuildError(f"cannot clean up {path}: still mounted: {', '.join(left)}")
    shutil.rmtree(path)


def deb_cache_dir(suite: str) -> Path | None:
    """Where downloaded .debs are kept between builds (a rebuild then skips the download)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(base) / "aiide" / f"debootstrap-{suite}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path


def prune_deb_cache(cache_dir: Path, used: list[tuple[str, str]]) -> None:
    """Keep only the .debs of the last build, so the cache does not grow forever."""
    prefixes = tuple(f"{name}_{version.replace(':', '%3a')}_" for name, version in used)
    if not prefixes:
        return
    for deb in cache_dir.glob("*.deb"):
        if not deb.name.startswith(prefixes):
            deb.unlink()
