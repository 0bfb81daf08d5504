"""Many users at once: C concurrent JDBC connections x Q queries against a running `sqlext serve`.

    python -m bench.load --home DIR            # starts its own server on DIR (bundles + the table)
    python -m bench.load --port 10000 [--server-pid PID]   # or targets one that is running

Every connection is one user with its own Spark session: it sets its own
``spark.sql.shuffle.partitions`` and a private temporary view, runs its queries (a mix of
``image_label``, ``classify_image`` filters, aggregates and joins over ``--table``), and checks
that every answer equals the single-user answer and that it sees its own settings and views
only.  Rounds run back to back; after each one the server's resident memory is read (the
`sqlext serve` driver + its JVM + Python workers, from /proc), so growth across rounds shows.

``run(...)`` returns a ``Report``; the CLI prints a summary (and ``--json FILE`` writes it).
tests/test_load.py runs the same code at CI size.
"""
import argparse
import json
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

from bench import procs

# name -> SQL over {t}; every result is ordered, so answers compare as lists
QUERIES = {
    "labels": "SELECT path, image_label(content) FROM {t} ORDER BY path",
    "labels_versioned": "SELECT path, image_label(content, 'imagenet:1') FROM {t} ORDER BY path",
    "struct": "SELECT path, classify_image(content).label, round(classify_image(content).probability, 4), "
              "classify_image(content).model FROM {t} ORDER BY path",
    "filter": "SELECT path FROM {t} WHERE classify_image(content).probability > 0.3 ORDER BY path",
    "aggregate": "SELECT image_label(content) AS label, count(*) AS n FROM {t} GROUP BY 1 ORDER BY n DESC, label",
    "count": "SELECT count(*), count(image_label(content)), count(DISTINCT image_label(content)) FROM {t}",
    "join": "SELECT l.path, l.label, s.bytes FROM (SELECT path, image_label(content) AS label FROM {t}) l "
            "JOIN (SELECT path, length(content) AS bytes FROM {t}) s ON l.path = s.path ORDER BY l.path",
    "self_join": "SELECT a.path, count(b.path) FROM {t} a JOIN {t} b "
                 "ON classify_image(a.content).label = classify_image(b.content).label GROUP BY a.path ORDER BY 1",
}


@dataclass
class Report:
    connections: int
    queries_per_connection: int
    rounds: int
    queries: int = 0
    wrong_answers: list = field(default_factory=list)   # (round, client, query name, got)
    errors: list = field(default_factory=list)          # (round, client, what, message)
    connect_failures: int = 0
    isolation_failures: list = field(default_factory=list)
    latencies: list = field(default_factory=list)       # seconds per query
    round_seconds: list = field(default_factory=list)
    # after the reference run, then after each round: Reading(...) of the server's processes
    readings: list = field(default_factory=list)
    timeline: list = field(default_factory=list)        # (seconds since start, RSS MB, workers) periodically

    @property
    def ok(self) -> bool:
        return not (self.wrong_answers or self.errors or self.connect_failures or self.isolation_failures)

    def summary(self) -> str:
        lat = sorted(self.latencies) or [0.0]
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
        busy = sum(self.round_seconds) or 1.0
        lines = [
            f"{self.connections} connections x {self.queries_per_connection} queries x {self.rounds} rounds: "
            f"{self.queries} queries in {busy:.1f}s ({self.queries / busy:.2f} queries/s)",
            f"latency per query: median {statistics.median(lat):.2f}s, p95 {p(0.95):.2f}s, max {lat[-1]:.2f}s",
            f"wrong answers {len(self.wrong_answers)}, errors {len(self.errors)}, refused connections "
            f"{self.connect_failures}, isolation failures {len(self.isolation_failures)}",
        ]
        if self.readings:
            lines.append("after the reference run, then each round:")
            for label, key, unit in (("server RSS, all processes", "rss_mb", " MB"),
                                     ("  Spark driver JVM", "jvm_mb", " MB"),
                                     ("  Python (sqlext serve + daemon + workers)", "python_mb", " MB"),
                                     ("Python workers", "workers", ""), ("JVM threads", "jvm_threads", ""),
                                     ("  outside Spark's elastic pools", "jvm_threads_unpooled", ""),
                                     ("JVM open files", "jvm_files", "")):
                values = [r[key] for r in self.readings]
                lines.append(f"  {label}: " + " -> ".join(f"{v:.0f}" for v in values) + unit)
        if self.timeline:
            step = max(1, len(self.timeline) // 8)
            points = self.timeline[::step] + ([self.timeline[-1]] if (len(self.timeline) - 1) % step else [])
            lines.append("server RSS over time (s: MB/workers): "
                         + ", ".join(f"{t:.0f}: {m:.0f}/{w}" for t, m, w in points)
                         + f"; peak {max(m for _, m, _ in self.timeline):.0f} MB, "
                         + f"{max(w for *_, w in self.timeline)} workers")
        for item in (self.wrong_answers + self.errors + self.isolation_failures)[:5]:
            lines.append(f"  e.g. {item}")
        return "\n".join(lines)


def _connect(host, port, username):
    from pyhive import hive

    return hive.connect(host, port, username=username)


def _fetch(cursor, sql):
    cursor.execute(sql)
    return [tuple(r) for r in cursor.fetchall()] if cursor.description else []


def reference(host: str, port: int, table: str) -> dict:
    """The single-user answers: every query once, one after another, on one connection."""
    conn = _connect(host, port, "load-reference")
    try:
        cursor = conn.cursor()
        return {name: _fetch(cursor, sql.format(t=table)) for name, sql in QUERIES.items()}
    finally:
        conn.close()


def _client(index, round_no, host, port, table, count, expected, report, lock):
    """One user: own session settings and temporary view, ``count`` queries, then isolation checks."""
    names = list(QUERIES)
    try:
        conn = _connect(host, port, f"load-user-{index}")
    except Exception as exc:  # a refused or dropped connection is what this run is looking for
        with lock:
            report.connect_failures += 1
            report.errors.append((round_no, index, "connect", repr(exc)[:300]))
        return
    try:
        cursor = conn.cursor()
        partitions = 2 + index % 7
        _fetch(cursor, f"SET spark.sql.shuffle.partitions={partitions}")
        # DDL: executed, not fetched (PyHive fails fetching the empty result Spark gives for it)
        cursor.execute(f"CREATE OR REPLACE TEMPORARY VIEW load_view_{index} AS SELECT {index} AS who")
        for i in range(count):
            name = names[(index + i + round_no) % len(names)]
            started = time.perf_counter()
            try:
                got = _fetch(cursor, QUERIES[name].format(t=table))
            except Exception as exc:
                with lock:
                    report.errors.append((round_no, index, name, str(exc)[:300]))
                continue
            with lock:
                report.latencies.append(time.perf_counter() - started)
                report.queries += 1
                if got != expected[name]:
                    report.wrong_answers.append((round_no, index, name, got[:3]))
        problems = []
        setting = _fetch(cursor, "SET spark.sql.shuffle.partitions")
        if setting != [("spark.sql.shuffle.partitions", str(partitions))]:
            problems.append(f"shuffle.partitions is {setting}, set {partitions}")
        views = {r[1] for r in _fetch(cursor, "SHOW VIEWS") if str(r[1]).startswith("load_view_")}
        if views != {f"load_view_{index}"}:
            problems.append(f"sees temporary views {sorted(views)}")
        if _fetch(cursor, f"SELECT who FROM load_view_{index}") != [(index,)]:
            problems.append("own view has the wrong content")
        if problems:
            with lock:
                report.isolation_failures.append((round_no, index, "; ".join(problems)))
    except Exception as exc:
        with lock:
            report.errors.append((round_no, index, "session", str(exc)[:300]))
    finally:
        try:
            conn.close()
        except Exception:
            pass


def _memory(server_pid):
    if not server_pid:
        return None, None
    tree = procs.tree(server_pid)
    return procs.rss_mb(tree.all()), len(tree.workers)


def reading(server_pid) -> dict:
    """The server's processes now: RSS (all, JVM, Python side), worker count, JVM threads and open files."""
    tree = procs.tree(server_pid)
    python = (tree.root,) + tree.daemons + tree.workers
    return {"rss_mb": procs.rss_mb(tree.all()), "jvm_mb": procs.rss_mb([tree.jvm] if tree.jvm else []),
            "python_mb": procs.rss_mb(python), "workers": len(tree.workers),
            "jvm_threads": procs.threads(tree.jvm), "jvm_threads_unpooled": procs.threads_outside_pools(tree.jvm),
            "jvm_files": procs.open_files(tree.jvm)}


def _reading(server_pid, report):
    """Append a ``reading`` to ``report``; return (RSS, workers), (None, None) without a server pid."""
    if not server_pid:
        return None, None
    now = reading(server_pid)
    report.readings.append(now)
    return now["rss_mb"], now["workers"]


def _sample(server_pid, every, report, stop):
    started = time.monotonic()
    while not stop.wait(every):
        memory, workers = _memory(server_pid)
        report.timeline.append((time.monotonic() - started, memory, workers))


def run(host: str, port: int, connections: int = 16, queries: int = 50, rounds: int = 1,
        table: str = "demo.photos", server_pid: int = None, timeout: float = 3600, log=print,
        sample_every: float = 0) -> Report:
    """Reference answers, then ``rounds`` rounds of ``connections`` concurrent users x ``queries`` each.

    ``server_pid``: the `sqlext serve` process, for memory readings (None: none taken), also
    every ``sample_every`` seconds if > 0.  A round still running after ``timeout`` seconds is
    reported as an error (its threads are abandoned).
    """
    report = Report(connections, queries, rounds)
    expected = reference(host, port, table)
    stop_sampling = threading.Event()
    if server_pid and sample_every > 0:
        threading.Thread(target=_sample, args=(server_pid, sample_every, report, stop_sampling), daemon=True,
                         name="load-memory").start()
    try:
        _rounds(host, port, connections, queries, rounds, table, server_pid, timeout, log, expected, report)
    finally:
        stop_sampling.set()
    return report


def _rounds(host, port, connections, queries, rounds, table, server_pid, timeout, log, expected, report):
    """The rounds of ``run``: fills ``report`` in place."""
    _reading(server_pid, report)
    lock = threading.Lock()
    for round_no in range(rounds):
        started = time.perf_counter()
        threads = [threading.Thread(target=_client, daemon=True, name=f"load-user-{i}",
                                    args=(i, round_no, host, port, table, queries, expected, report, lock))
                   for i in range(connections)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = sum(t.is_alive() for t in threads)
        if stuck:
            report.errors.append((round_no, None, "timeout", f"{stuck} connection(s) still running after {timeout}s"))
        report.round_seconds.append(time.perf_counter() - started)
        memory, workers = _reading(server_pid, report)
        log(f"round {round_no + 1}/{rounds}: {report.round_seconds[-1]:.1f}s, {report.queries} queries so far"
            + (f", server RSS {memory:.0f} MB, {workers} Python workers" if memory is not None else ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--home", help="start `sqlext serve` on this SQLEXT_HOME (it must hold --table)")
    target.add_argument("--port", type=int, help="use the server already listening on --host:--port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--server-pid", type=int, help="with --port: the `sqlext serve` pid, for memory readings")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--queries", type=int, default=50, help="queries per connection per round")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--table", default="demo.photos", help="a table of (path, content)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one round may take")
    parser.add_argument("--sample-every", type=float, default=10, help="seconds between memory readings")
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args(argv)

    server = None
    if args.home:
        from bench.common import Server

        server = Server(args.home, name="load").start()
        host, port, pid = server.host, server.port, server.proc.pid
        print(f"started sqlext serve on {host}:{port} in {server.ready_seconds:.1f}s", flush=True)
    else:
        host, port, pid = args.host, args.port, args.server_pid
    try:
        report = run(host, port, args.connections, args.queries, args.rounds, args.table, pid, args.timeout,
                     log=lambda line: print(line, flush=True), sample_every=args.sample_every)
    finally:
        if server:
            server.stop()
    print(report.summary())
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(asdict(report), fh, indent=1, default=str)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
