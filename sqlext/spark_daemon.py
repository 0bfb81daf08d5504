"""Spark's Python worker daemon (``pyspark.daemon``), started without archives on ``sys.path``.

Spark starts the daemon with ``PYTHONPATH`` = ``pyspark.zip``, the py4j zip and the spark-core
jar, ahead of site-packages.  Every task then runs ``importlib.invalidate_caches()``, and on
Python 3.11 that re-reads the whole directory of every zip or jar with a zipimporter: measured
~200 ms of CPU per task in each worker (a third of a worker's time on a table of camera photos
split into small tasks).  pip-installed pyspark and py4j sit in site-packages already, so the
daemon drops the archives before anything is imported from them; the workers it forks inherit
that.  Where pyspark or py4j exist only in the zips (a Spark distribution without pip), the zips
stay.  Selected by ``spark.python.daemon.module`` (sqlext.session).

Each task also starts with the worker's socket in TCP quick-ACK mode.  The JVM sends a task's
command and then its data in small writes; with the worker's kernel delaying its ACK (it has
nothing to send back yet) and Nagle's algorithm holding the JVM's next small write until that
ACK, every task waited ~40 ms (strace: the read after the command blocked 42 ms for a one-row
pandas UDF, whose query went from 107 to 65 ms p50 with quick-ACK).
"""
import fnmatch
import os
import sys
from importlib.machinery import PathFinder

SPARK_ZIPS = ("pyspark.zip", "py4j-*-src.zip")


def _spark_zip(entry: str) -> bool:
    return any(fnmatch.fnmatch(os.path.basename(entry), pattern) for pattern in SPARK_ZIPS)


def trimmed(path: list) -> list:
    """``path`` without the spark-core jar (no Python inside), and without Spark's own zips if pyspark
    and py4j are importable from the rest.  Other entries (a user's zips) stay."""
    path = [entry for entry in path if not entry.endswith(".jar")]
    without_zips = [entry for entry in path if not _spark_zip(entry)]
    if all(PathFinder.find_spec(name, without_zips) for name in ("pyspark", "py4j")):
        return without_zips
    return path


if __name__ == "__main__":
    kept = trimmed(sys.path)
    for entry in set(sys.path) - set(kept):
        sys.path_importer_cache.pop(entry, None)
    sys.path[:] = kept
    import socket

    from pyspark import daemon

    spark_worker = daemon.worker
    quick_ack = hasattr(socket, "TCP_QUICKACK") and os.environ.get("SQLEXT_TCP_QUICKACK", "on") != "off"

    def worker(sock, authenticated):
        """One task on a (possibly reused) worker socket; Linux only keeps quick-ACK mode for a while."""
        if quick_ack:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return spark_worker(sock, authenticated)

    daemon.worker = worker
    daemon.manager()
