"""Give the sandbox uid its workspace without changing the owner of anyone's files.

Under root, a workspace owned by a user is used by running the kernel as that user
(``workspace.sandbox_identity_for``): nothing changes. A root-owned workspace that
the dedicated sandbox uid cannot write gets a POSIX ACL entry for that uid, added
through the workspace's descriptor (never its path, which a kernel could swap) and
removed when the last kernel using it stops, restoring the ACL and mode exactly.

Each grant is written down in ``<run root>/aiide-grants/<dev>-<ino>.json`` with the
original ACL and mode and every process holding it, so a server that crashed is
cleaned up after by the next kernel start (any holder whose process is gone is
dropped; a record with no holder left is restored and deleted).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import stat
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import psutil  # type: ignore[import-untyped]

from .policy import SandboxConfigError
from .workspace import WorkspaceHandle

log = logging.getLogger("aiide.grants")

ACL_XATTR = "system.posix_acl_access"
_ACL_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_UNDEFINED_ID = 0xFFFFFFFF
_RWX = 7


def decode_acl(data: bytes) -> list[tuple[int, int, int]]:
    """(tag, perm, id) entries of an xattr-encoded POSIX ACL."""
    (version,) = struct.unpack_from("<I", data, 0)
    if version != _ACL_VERSION or (len(data) - 4) % 8:
        raise ValueError("not a POSIX ACL")
    return [struct.unpack_from("<HHI", data, off) for off in range(4, len(data), 8)]


def encode_acl(entries: list[tuple[int, int, int]]) -> bytes:
    ordered = sorted(entries, key=lambda e: (e[0], e[2] if e[0] in (_USER, _GROUP) else 0))
    return struct.pack("<I", _ACL_VERSION) + b"".join(struct.pack("<HHI", *e) for e in ordered)


def acl_with_user(mode: int, current: bytes | None, uid: int) -> bytes:
    """The ACL that adds rwx for ``uid`` to ``current`` (or to the mode's bits),
    with the mask widened only as far as it needs: group members gain nothing."""
    if current:
        entries = [e for e in decode_acl(current) if not (e[0] == _USER and e[2] == uid)]
    else:
        entries = [
            (_USER_OBJ, (mode >> 6) & 7, _UNDEFINED_ID),
            (_GROUP_OBJ, (mode >> 3) & 7, _UNDEFINED_ID),
            (_OTHER, mode & 7, _UNDEFINED_ID),
        ]
    entries = [e for e in entries if e[0] != _MASK]
    entries.append((_USER, _RWX, uid))
    group_class = 0
    for tag, perm, _ in entries:
        if tag in (_USER, _GROUP, _GROUP_OBJ):
            group_class |= perm
    entries.append((_MASK, group_class, _UNDEFINED_ID))
    return encode_acl(entries)


def read_acl(path: str) -> bytes | None:
    try:
        return os.getxattr(path, ACL_XATTR)
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP):
            return None
        raise


def _needs_grant(ws: WorkspaceHandle, uid: int, gid: int) -> bool:
    """Whether ``uid`` lacks write and search on the workspace by its mode bits."""
    mode = ws.mode
    if ws.owner_uid == uid:
        return (mode & (stat.S_IWUSR | stat.S_IXUSR)) != (stat.S_IWUSR | stat.S_IXUSR)
    if ws.owner_gid == gid:
        return (mode & (stat.S_IWGRP | stat.S_IXGRP)) != (stat.S_IWGRP | stat.S_IXGRP)
    return (mode & (stat.S_IWOTH | stat.S_IXOTH)) != (stat.S_IWOTH | stat.S_IXOTH)


# -- records -------------------------------------------------------------------------


def grants_dir(run_root: str) -> str:
    """A root-only directory for grant records; refuses one planted by someone else."""
    path = os.path.join(run_root or tempfile.gettempdir(), "aiide-grants")
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise SandboxConfigError(
            f"{path} is not a private directory of this user: not recording workspace "
            "grants there (remove it, or set c.SandboxProvisioner.run_root)"
        )
    return path


@contextlib.contextmanager
def _locked(directory: str) -> Iterator[None]:
    fd = os.open(os.path.join(directory, "lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _holder() -> dict[str, object]:
    proc = psutil.Process()
    return {"pid": proc.pid, "started": proc.create_time()}


def _alive(holder: dict[str, object]) -> bool:
    try:
        proc = psutil.Process(int(str(holder["pid"])))
        return bool(abs(proc.create_time() - float(str(holder["started"]))) < 0.01)
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError, ValueError):
        return False


def _load(path: str) -> dict[str, object] | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _save(path: str, record: dict[str, object]) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(record, f)
    os.replace(tmp, path)


def _restore(record: dict[str, object]) -> None:
    """Put the ACL and mode back on the recorded directory, if it is still that one."""
    path = str(record["path"])
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return  # gone: nothing to restore
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (record["dev"], record["ino"]):
            return
        proc = f"/proc/self/fd/{fd}"
        original = record.get("acl")
        if original:
            os.setxattr(proc, ACL_XATTR, bytes.fromhex(str(original)))
        else:
            with contextlib.suppress(OSError):
                os.removexattr(proc, ACL_XATTR)
        os.chmod(proc, int(str(record["mode"])))
    finally:
        os.close(fd)


def _entries(directory: str) -> list[str]:
    return [
        os.path.join(directory, n)
        for n in os.listdir(directory)
        if n.endswith(".json") and not n.startswith(".")
    ]


def recover(run_root: str) -> int:
    """Drop holders that are gone and restore what no one holds; how many restored."""
    if os.geteuid() != 0:
        return 0
    if not os.path.isdir(os.path.join(run_root or tempfile.gettempdir(), "aiide-grants")):
        return 0  # nothing was ever granted from this run root
    directory = grants_dir(run_root)
    restored = 0
    with _locked(directory):
        for path in _entries(directory):
            record = _load(path)
            if record is None:
                continue
            holders = [h for h in list(record.get("holders", [])) if _alive(h)]  # type: ignore[call-overload]
            if holders:
                if holders != record.get("holders"):
                    record["holders"] = holders
                    _save(path, record)
                continue
            _restore(record)
            os.unlink(path)
            restored += 1
            log.warning("aiide: restored the access of %s left by a stopped server", record["path"])
        _tidy(directory)
    return restored


def _tidy(directory: str) -> None:
    """Leave no records directory behind once nothing is granted (called locked)."""
    if not _entries(directory):
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, "lock"))
            os.rmdir(directory)


_recovered: set[str] = set()


def recover_once(run_root: str) -> None:
    """The first kernel start of this process cleans up after a crashed server,
    whether or not this start needs a grant itself."""
    key = run_root or tempfile.gettempdir()
    if key not in _recovered:
        _recovered.add(key)
        recover(run_root)


@dataclass
class Grant:
    """Access the sandbox uid holds on one workspace until ``release``."""

    record_path: str
    directory: str
    holder: dict[str, object]
    released: bool = False

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        with _locked(self.directory):
            record = _load(self.record_path)
            if record is None:
                return
            holders = list(record.get("holders", []))  # type: ignore[call-overload]
            with contextlib.suppress(ValueError):
                holders.remove(self.holder)
            holders = [h for h in holders if _alive(h)]
            if holders:
                record["holders"] = holders
                _save(self.record_path, record)
                return
            _restore(record)
            os.unlink(self.record_path)
            _tidy(self.directory)


def grant_workspace(ws: WorkspaceHandle, uid: int, gid: int, run_root: str) -> Grant | None:
    """Let ``uid`` write in ``ws`` without chown; None when nothing had to change."""
    recover_once(run_root)
    if os.geteuid() != 0 or not _needs_grant(ws, uid, gid):
        return None
    holder = {**_holder(), "token": os.urandom(8).hex()}
    for attempt in range(3):
        try:
            return _grant(ws, uid, run_root, holder)
        except FileNotFoundError:
            if attempt == 2:  # another server tidied the records directory meanwhile
                raise
    raise AssertionError("unreachable")


def _grant(ws: WorkspaceHandle, uid: int, run_root: str, holder: dict[str, object]) -> Grant:
    directory = grants_dir(run_root)
    record_path = os.path.join(directory, f"{ws.dev}-{ws.ino}.json")
    proc = ws.proc_path
    with _locked(directory):
        record = _load(record_path)
        if record is None:
            original = read_acl(proc)
            record = {
                "path": ws.path,
                "dev": ws.dev,
                "ino": ws.ino,
                "mode": stat.S_IMODE(os.stat(proc).st_mode),
                "acl": original.hex() if original else None,
                "uids": [],
                "holders": [],
            }
        uids = list(record["uids"])  # type: ignore[call-overload]
        if uid not in uids:
            current = read_acl(proc)
            try:
                os.setxattr(proc, ACL_XATTR, acl_with_user(ws.mode, current, uid))
            except OSError as e:
                raise SandboxConfigError(
                    f"cannot give the sandbox uid {uid} access to {ws.path} without changing "
                    f"its owner: setting a POSIX ACL failed ({e.strerror}). Use a workspace "
                    "owned by an ordinary user (kernels then run as that user), or one that "
                    f"uid {uid} may write."
                ) from None
            uids.append(uid)
            record["uids"] = uids
        record["holders"] = [*list(record["holders"]), holder]  # type: ignore[call-overload]
        _save(record_path, record)
    return Grant(record_path, directory, holder)
