"""`sqlext serve` as a child process: start it, wait for its ready line, stop it.

Used by `make demo` (sqlext.demo), the tests (tests/conftest.py) and the benchmarks (bench/common.py).
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SQLEXT = str(Path(sys.executable).parent / "sqlext")


class NotReady(RuntimeError):
    """`sqlext serve` exited or did not print its ready line in time; ``reason`` says which."""

    def __init__(self, reason: str, log: str):
        super().__init__(f"{reason}:\n{log[-4000:]}")
        self.reason = reason


class ServeProcess:
    """``sqlext serve --host HOST --port PORT ARGS`` with ``SQLEXT_HOME=home``, its output appended to
    ``log_path``, in a process group of its own. ``env``: variables set on top of this process's environment."""

    poll_seconds = 0.5
    username = None  # connect()'s default user (None: PyHive takes the login name)

    def __init__(self, home, port: int, log_path, args=(), env=None, host: str = "127.0.0.1"):
        self.home, self.host, self.port = Path(home), host, port
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.args, self.env = list(args), dict(env or {})
        self.proc, self.ready_seconds, self._log = None, None, None

    @property
    def url(self) -> str:
        return f"jdbc:hive2://{self.host}:{self.port}/default"

    def start(self, timeout: float = 180) -> "ServeProcess":
        """Start and wait for ``ready: URL`` in the log; if it exits, times out or is interrupted, stop it."""
        self._log = open(self.log_path, "ab")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [SQLEXT, "serve", "--host", self.host, "--port", str(self.port), *self.args],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, "SQLEXT_HOME": str(self.home), **self.env},
            start_new_session=True)
        try:
            while time.monotonic() - started < timeout:
                if self.proc.poll() is not None:
                    raise NotReady(f"sqlext serve exited with {self.proc.returncode}", self.log())
                if f"ready: {self.url}" in self.log():
                    self.ready_seconds = time.monotonic() - started
                    return self
                time.sleep(self.poll_seconds)
            raise NotReady(f"sqlext serve not ready after {timeout}s", self.log())
        except BaseException:
            self.stop()
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM; after ``timeout`` seconds SIGKILL to its whole process group. The exit code (0: never started)."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._log:
            self._log.close()
        return self.proc.returncode if self.proc else 0

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def connect(self, **kwargs):
        """A PyHive connection; ``kwargs`` as for ``pyhive.hive.connect`` (username, password, auth, ...)."""
        from pyhive import hive

        kwargs.setdefault("username", self.username)
        return hive.connect(self.host, self.port, **kwargs)
