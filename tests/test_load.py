"""Many users at once, CI size: 16 concurrent JDBC connections x 4 queries (two rounds of 2).

The same code as `python -m bench.load` (bench/load.py), which runs the full 16 x 50.
"""
import os

from bench import load, procs

CONNECTIONS, QUERIES_PER_ROUND, ROUNDS = 16, 2, 2


def test_sixteen_concurrent_users_get_the_single_user_answers(server):
    report = load.run(server.host, server.port, CONNECTIONS, QUERIES_PER_ROUND, ROUNDS, table="demo.photos",
                      server_pid=server.proc.pid, timeout=600, log=lambda line: None)
    summary = report.summary()
    assert report.connect_failures == 0, summary
    assert not report.errors, summary
    assert not report.wrong_answers, summary
    assert not report.isolation_failures, summary  # each saw its own SET and temporary view only
    assert report.queries == CONNECTIONS * QUERIES_PER_ROUND * ROUNDS, summary
    # readings after the reference run and after each round: a later round leaves nothing behind
    readings = report.readings
    assert len(readings) == ROUNDS + 1, summary
    first, last = readings[1], readings[-1]
    assert last["python_mb"] < first["python_mb"] + 200, summary  # sqlext serve + daemon + workers
    assert 0 < max(r["workers"] for r in readings) <= 4 * (os.cpu_count() or 2), summary  # reused, not piled up
    assert last["jvm_files"] <= first["jvm_files"] + CONNECTIONS // 2, summary  # no socket left per connection
    # threads per connection left behind (Spark's elastic pools grow with the queries in flight, bounded)
    assert last["jvm_threads_unpooled"] < first["jvm_threads_unpooled"] + 3 * CONNECTIONS, summary
    # the JVM's RSS follows G1's heap sizing (noisy under CPU contention), capped by its -Xmx
    heap = procs.max_heap_mb(procs.tree(server.proc.pid).jvm)
    assert heap and max(r["jvm_mb"] for r in readings) < heap + 1024, summary
    assert server.alive()


def test_reference_answers_are_sensible(server):
    """Guards the load test against comparing empty or NULL answers with each other."""
    answers = load.reference(server.host, server.port, "demo.photos")
    assert len(answers["labels"]) == 7 and all(label for _, label in answers["labels"])
    assert answers["count"] == [(7, 7, 7)]
    assert {model for *_, model in answers["struct"]} == {"imagenet:1"}
    assert answers["labels_versioned"] == answers["labels"]
    assert [path for path, *_ in answers["join"]] == [path for path, _ in answers["labels"]]
