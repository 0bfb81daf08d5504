"""The processes of one running `sqlext serve`, read from /proc (Linux): for memory readings and faults.

``tree(pid)`` -> ``Tree(jvm, daemons, workers)`` for the `sqlext serve` process ``pid``: its Spark
driver JVM, the Python worker daemon processes the JVM started, and the Python workers those
daemons forked (the processes that run the UDFs).  ``rss_mb`` / ``peak_mb`` read VmRSS / VmHWM;
``threads`` / ``open_files`` count what a leaking connection or session would pile up.
Only processes under ``pid`` are ever returned, so a caller that signals them touches nothing
it did not start.
"""
import os
from dataclasses import dataclass

from bench.common import children, cmdline, is_daemon, status_kb


@dataclass(frozen=True)
class Tree:
    root: int
    jvm: int            # 0 if not (yet) running
    daemons: tuple
    workers: tuple

    def all(self) -> tuple:
        """Every process of the server: the `sqlext serve` Python driver, the JVM, daemons, workers."""
        return (self.root,) + ((self.jvm,) if self.jvm else ()) + self.daemons + self.workers


def tree(pid: int) -> Tree:
    descendants = children(pid)
    jvm = next((p for p in descendants if "org.apache.spark.deploy.SparkSubmit" in cmdline(p)), 0)
    # workers are forks of their daemon, so they share its command line: tell them apart by parent
    daemons = tuple(p for p in (children(jvm) if jvm else []) if parent(p) == jvm and is_daemon(p))
    workers = tuple(w for d in daemons for w in children(d) if parent(w) == d)
    return Tree(pid, jvm, daemons, workers)


def parent(pid: int) -> int:
    """The parent pid of ``pid`` (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def rss_mb(pids) -> float:
    """Resident memory of ``pids`` now, in MB (processes that are gone count 0)."""
    return sum(status_kb(p, "VmRSS") for p in pids) / 1024


def peak_mb(pid: int) -> float:
    """The highest resident memory ``pid`` ever had (VmHWM), in MB."""
    return status_kb(pid, "VmHWM") / 1024


def cpu_ticks(pid: int) -> int:
    """User + system CPU time of ``pid`` in clock ticks (0 if it is gone): rises while it works."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def threads(pid: int) -> int:
    """Number of threads of ``pid`` (0 if it is gone)."""
    return status_kb(pid, "Threads")


# Spark's bounded thread pools that grow with the number of queries in flight and shrink after 60 s idle
# (names as the kernel keeps them: 15 characters): more of them under load is not a leak
ELASTIC_POOLS = ("broadcast-excha", "Executor task l", "block-manager-a", "block-manager-s", "QueryStageCreat",
                 "subquery-", "shuffle-exchang")


def threads_outside_pools(pid: int) -> int:
    """Threads of ``pid`` that do not belong to one of Spark's ELASTIC_POOLS (0 if it is gone)."""
    try:
        names = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as fh:
                    names.append(fh.read().strip())
            except OSError:  # the thread ended meanwhile
                pass
    except OSError:
        return 0
    return sum(1 for name in names if not name.startswith(ELASTIC_POOLS))


def open_files(pid: int) -> int:
    """Number of open file descriptors of ``pid`` (sockets included; 0 if it is gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def max_heap_mb(jvm: int) -> int:
    """The JVM's -Xmx in MB, from its command line (0 if absent or unreadable)."""
    import re

    sizes = re.findall(r"-Xmx(\d+)([kKmMgG]?)(?:\s|$)", cmdline(jvm))
    if not sizes:
        return 0
    number, unit = sizes[-1]
    return int(int(number) * {"k": 1 / 1024, "m": 1, "g": 1024, "": 1 / (1024 * 1024)}[unit.lower()])
