"""Shared bench helpers: a real `sqlext serve`, the `sqlext` CLI, timing statistics, /proc readings."""
import datetime as _dt
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sqlext.serve_process import ServeProcess

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SQLEXT = str(BIN / "sqlext")


def base_env(home=None, **extra) -> dict:
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", PYTHONUNBUFFERED="1")
    if home is not None:
        env["SQLEXT_HOME"] = str(home)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def sqlext(home, *args, env=None, timeout=1800) -> str:
    """Run the real `sqlext` console script; return its stdout, raise with its output on failure."""
    result = subprocess.run([SQLEXT, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                            env=base_env(home, **(env or {})))
    if result.returncode != 0:
        raise RuntimeError(f"sqlext {' '.join(map(str, args))} failed ({result.returncode}):\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summary(values) -> dict:
    values = [float(v) for v in values]
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values),
            "values": values}


def fmt_range(s: dict, digits: int = 1, unit: str = "") -> str:
    f = f"{{:.{digits}f}}"
    return f"{f.format(s['median'])}{unit} ({f.format(s['min'])}–{f.format(s['max'])}, {s['runs']} runs)"


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
                       "amx_int8") if f in flags]
    try:
        import openvino
        ov_version = openvino.__version__
    except ImportError:
        ov_version = "?"
    return {"nproc": os.cpu_count(), "cpu": model or platform.processor(), "isa": isa,
            "cpu_pressure_start": cpu_pressure(),
            "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "python": platform.python_version(), "openvino": ov_version,
            "load_at_start": os.getloadavg()}


def cpu_pressure():
    """Share of the last 60 s in which some runnable task waited for a CPU (Linux PSI), or None."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return float(first.split("avg60=")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return None


# ---------------------------------------------------------------------------------------- /proc
def children(pid: int) -> list:
    """All descendant pids of ``pid``."""
    kids = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for kid in kids.get(todo.pop(), []):
            found.append(kid)
            todo.append(kid)
    return found


DAEMON_MODULES = ("pyspark.daemon", "sqlext.spark_daemon")  # Spark's, and sqlext's wrapper of it


def is_daemon(pid: int) -> bool:
    """Whether ``pid`` runs a Spark Python worker daemon (or a worker forked from one)."""
    return any(module in cmdline(pid) for module in DAEMON_MODULES)


def status_kb(pid: int, field: str) -> int:
    """VmRSS / VmHWM of ``pid`` in kB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pids) -> float:
    """User + system CPU time of ``pids`` (and their finished, waited-for children), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------- server
class Server(ServeProcess):
    """A `sqlext serve` subprocess on a free loopback port (the way a user starts it)."""

    poll_seconds = 0.05  # ready_seconds is a reported figure
    username = "bench"

    def __init__(self, home, extra_args=(), env=None, name="serve"):
        port = free_port()
        super().__init__(home, port, Path(home) / "logs" / f"bench-{name}-{port}.log", extra_args,
                         env=base_env(home, **(env or {})))

    def start(self, timeout=240) -> "Server":
        return super().start(timeout)

    def query(self, sql, conn=None) -> list:
        own = conn is None
        conn = conn or self.connect()
        cursor = conn.cursor()
        try:
            cursor.execute(sql)
            return cursor.fetchall() if cursor.description else []
        finally:
            cursor.close()  # ends the operation on the server: an open one keeps its result in the driver
            if own:
                conn.close()

    def execute(self, sql, conn=None) -> None:
        """A statement whose result is not read (DDL, SET, RESET), on ``conn`` or on a connection of its own."""
        own = conn is None
        conn = conn or self.connect()
        cursor = conn.cursor()
        try:
            cursor.execute(sql)
        finally:
            cursor.close()
            if own:
                conn.close()

    def timed(self, sql, conn=None) -> tuple:
        """(seconds, rows) of ``sql`` on ``conn``, else on one connection held open for the timed queries
        (as a BI tool's pool holds them): opening a session is measured apart (serving.session_cost)."""
        conn = conn or self.held()
        started = time.perf_counter()
        rows = self.query(sql, conn)
        return time.perf_counter() - started, rows

    def held(self):
        if getattr(self, "_held", None) is None:
            self._held = self.connect()
        return self._held

    def stop(self, *args, **kwargs):
        if getattr(self, "_held", None) is not None:
            try:
                self._held.close()
            except Exception:  # noqa: BLE001 - the server may be gone already
                pass
            self._held = None
        return super().stop(*args, **kwargs)

    # processes: the `sqlext serve` Python driver, its JVM, and the JVM's Python workers
    def jvm_pid(self) -> int:
        for pid in children(self.proc.pid):
            if "org.apache.spark.deploy.SparkSubmit" in cmdline(pid):
                return pid
        raise RuntimeError("no JVM under sqlext serve")

    def all_pids(self) -> list:
        """The `sqlext serve` process and every process under it (JVM, daemons, workers)."""
        return [self.proc.pid] + children(self.proc.pid)

    def worker_pids(self) -> list:
        """Python workers forked by the worker daemon (not the daemon itself)."""
        jvm = self.jvm_pid()
        daemons = [p for p in children(jvm) if is_daemon(p)]
        workers = []
        for daemon in daemons:
            workers += children(daemon)
        return workers
