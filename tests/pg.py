"""A throwaway PostgreSQL server for tests (Debian's `postgresql` package, see scripts/system-deps.sh).

``PostgresServer().start()`` runs initdb + pg_ctl in a fresh temp folder, listening on a free
127.0.0.1 port (and a unix socket inside that folder), password auth (scram) for one superuser.
PostgreSQL refuses to run as root: when the tests run as root (CI does), the cluster belongs to
the ``postgres`` system user that the package creates, and every server command runs as it.
``stop()`` shuts the server down and deletes the folder.  ``postgres`` is the session fixture.
"""
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found: run `bash scripts/system-deps.sh` as root "
                           "(installs Debian's postgresql)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster in a temp folder.  Not thread-safe; one per test session is plenty."""

    def __init__(self, user: str = "sqlext", password: str = "s3cr:t@pw"):
        self.user, self.password, self.host, self.port = user, password, "127.0.0.1", None
        self.bin, self.root = _bin_dir(), None
        # PostgreSQL will not run as root: then run it as the package's `postgres` user
        self.run_as = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    def _run(self, *args, check=True, **kwargs):
        if self.run_as:
            kwargs.update(user=self.run_as.pw_uid, group=self.run_as.pw_gid, extra_groups=[])
        env = dict(os.environ, PGPASSWORD=self.password, LC_ALL="C")
        result = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env,
                                cwd=self.root, timeout=120, **kwargs)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, args[:2]))} failed ({result.returncode}):\n"
                               f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}\n{self.log()[-2000:]}")
        return result

    def log(self) -> str:
        path = self.root and Path(self.root) / "server.log"
        return path.read_text(errors="replace") if path and path.exists() else ""

    @property
    def data(self) -> Path:
        return Path(self.root) / "data"

    def start(self, attempts: int = 3) -> "PostgresServer":
        self.root = tempfile.mkdtemp(prefix="sqlext-pg-")
        if self.run_as:
            os.chown(self.root, self.run_as.pw_uid, self.run_as.pw_gid)
        pwfile = Path(self.root) / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.run_as:
            os.chown(pwfile, self.run_as.pw_uid, self.run_as.pw_gid)
        self._run(self.bin / "initdb", "-D", self.data, "-U", self.user, f"--pwfile={pwfile}",
                  "--auth=scram-sha-256", "-E", "UTF8", "--no-sync")
        pwfile.unlink()
        for attempt in range(attempts):  # the free port can be taken between choosing and binding
            self.port = _free_port()
            options = f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off -c max_connections=100"
            result = self._run(self.bin / "pg_ctl", "-D", self.data, "-l", Path(self.root) / "server.log",
                               "-o", options, "-w", "-t", "60", "start", check=attempt == attempts - 1)
            if result.returncode == 0:
                return self
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if self.root and self.data.exists():
            self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop", check=False)
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def psql(self, sql: str, database: str = "postgres") -> list:
        """Run one SQL text; return the rows as lists of strings."""
        result = self._run(self.bin / "psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                           "-h", self.host, "-p", self.port, "-U", self.user, "-d", database, "-c", sql)
        return [line.split("\t") for line in result.stdout.splitlines() if line]

    def create_database(self, name: str) -> str:
        """A new empty database; return its sqlext metastore URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, database: str) -> str:
        from urllib.parse import quote

        return f"postgres://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{self.host}:{self.port}/{database}"


@pytest.fixture(scope="session")
def postgres():
    """A running PostgreSQL for the whole test session; ``postgres.create_database(name)`` -> URL."""
    server = PostgresServer().start()
    yield server
    server.stop()
