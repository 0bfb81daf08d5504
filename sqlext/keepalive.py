"""Keeps a long-running server's Python workers alive between queries.

Spark stops every idle Python worker once no Python task has finished for a minute (a fixed
timeout in PythonWorkerFactory).  The next query then forks new workers, which import numpy,
pandas, OpenCV and OpenVINO and compile each bundle again: a one-row lookup after a pause of
75 s took 0.7-1.6 s instead of ~0.15 s (BENCHMARKS.md).  Any Python task that finishes resets
that clock for all idle workers, so ``run`` finishes some every
``SQLEXT_WORKER_KEEPALIVE_SECONDS`` (default 30; 0 turns it off): a pandas job that returns its
input, one task per core, so that on a cluster each executor is likely to get one (Spark does
not promise the spread).  Its tasks queue behind a running query's, never ahead of them.
"""
import logging
import os
import threading

log = logging.getLogger("sqlext.keepalive")

DESCRIPTION = "sqlext: keep the Python workers alive"


def interval_seconds() -> float:
    """``$SQLEXT_WORKER_KEEPALIVE_SECONDS`` (default 30); 0 or less: no keepalive."""
    value = os.environ.get("SQLEXT_WORKER_KEEPALIVE_SECONDS", "30")
    try:
        return float(value)
    except ValueError:
        raise SystemExit(f"error: SQLEXT_WORKER_KEEPALIVE_SECONDS must be a number of seconds (0: off), "
                         f"got {value!r}") from None


def _unchanged(batches):
    yield from batches


def touch(spark) -> None:
    """Finish one pandas task per core: the worker pool of the SQL functions (a pandas job, not an RDD
    one: Spark keeps those workers in a separate pool)."""
    sc = spark.sparkContext
    cores = int(sc.defaultParallelism)
    sc.setLocalProperty("spark.job.description", DESCRIPTION)
    spark.range(0, cores, 1, cores).mapInPandas(_unchanged, "id long").collect()


def run(spark, interval: float, stop: threading.Event) -> None:
    """``touch`` now (the first query then finds its workers started) and every ``interval`` seconds
    until ``stop`` is set."""
    while not stop.is_set():
        try:
            touch(spark)
        except Exception as exc:  # e.g. the session stopping; the next query starts its workers itself
            if not stop.is_set():
                log.warning("keeping the Python workers alive failed: %s", exc)
        if stop.wait(interval):
            return
