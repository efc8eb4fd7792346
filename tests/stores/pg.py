"""A real PostgreSQL server for tests: Debian's binaries, a temp dir, a unix socket.

initdb and pg_ctl refuse to run as root, so under root they run as an unprivileged
user (``postgres`` when the package created it, else ``nobody``) through ``setpriv``.
The socket directory is 0700 and owned by that user, so only it and root can connect;
authentication is ``trust``. Nothing outlives the session: the data directory is in
/tmp and removed on stop.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

SUPERUSER = "aiide"


def find_bindir() -> str | None:
    """The newest installed server's binaries (Debian keeps them out of PATH)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
        reverse=True,
    )
    if os.environ.get("AIIDE_PG_BIN"):
        candidates.insert(0, os.environ["AIIDE_PG_BIN"])
    found = shutil.which("initdb")
    if found:
        candidates.append(os.path.dirname(os.path.realpath(found)))
    for bindir in candidates:
        if os.access(os.path.join(bindir, "initdb"), os.X_OK) and os.access(
            os.path.join(bindir, "pg_ctl"), os.X_OK
        ):
            return bindir
    return None


class PostgresServer:
    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="aiide-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            user = _unprivileged_user()
            entry = pwd.getpwnam(user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            self.prefix = [
                "setpriv",
                f"--reuid={entry.pw_uid}",
                f"--regid={entry.pw_gid}",
                "--clear-groups",
            ]
        self.dir.chmod(0o700)

    def _run(self, *args: str) -> None:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        result = subprocess.run(
            [*self.prefix, *args], cwd=self.dir, env=env, capture_output=True, text=True, timeout=60
        )
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}\n{log}")

    def start(self) -> None:
        self._run(
            f"{self.bindir}/initdb", "-D", str(self.data), "-A", "trust", "-U", SUPERUSER,
            "--no-sync", "--no-locale", "-E", "UTF8",
        )  # fmt: skip
        self.up()

    def up(self) -> None:
        """Run the server on the data directory (again, after ``down``: data kept)."""
        options = (
            f"-k {self.dir} -c listen_addresses='' -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=200"
        )
        self._run(f"{self.bindir}/pg_ctl", "-D", str(self.data), "-o", options,
                  "-l", str(self.log), "-w", "-t", "60", "start")  # fmt: skip

    def down(self) -> None:
        """Stop the server as an outage would, keeping its data for ``up``."""
        self._run(f"{self.bindir}/pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(f"{self.bindir}/pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@/{database}?host={self.dir}"

    def create_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("no unprivileged user (postgres or nobody) to run PostgreSQL as")
