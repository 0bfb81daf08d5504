"""Benchmarks against a real `sqlext serve` over PyHive: throughput, cache, latency, memory, scaling."""
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .bare import BareEngine
from .common import ROOT, Server, base_env, cpu_seconds, log, status_kb, summary

COUNT_SQL = "SELECT count(image_label(content{model})) FROM {table}"


def _count_sql(model: str = "", table: str = "bench.images") -> str:
    return COUNT_SQL.format(model=f", '{model}'" if model else "", table=table)


def warm_up(server: Server, sql: str, seconds: float = 20.0, most: int = 6) -> None:
    """Run ``sql`` until ``seconds`` have passed (at least twice, at most ``most`` times): workers forked,
    engines compiled, and the JVM's JIT done with the scan and Arrow paths, as on a server that has been up
    a while.  Measured passes right after one warm-up ran ~30% slower, still compiling."""
    started = time.monotonic()
    for i in range(most):
        server.query(sql, server.held())
        if i >= 1 and time.monotonic() - started >= seconds:
            break


def throughput(server: Server, bare: BareEngine, runs: int, model: str = "") -> dict:
    """SQL and bare-engine passes, interleaved (SQL, bare, SQL, bare, ...) so noise hits both alike."""
    sql, raw, sql_cpu, raw_cpu, cores, bare_cores, jvm_cpu = [], [], [], [], [], [], []
    warm_up(server, _count_sql(model))
    for i in range(runs):
        pids, jvm = server.all_pids(), server.jvm_pid()
        cpu, cpu_jvm = cpu_seconds(pids), cpu_seconds([jvm])
        seconds, rows = server.timed(_count_sql(model))
        sql_cpu.append((cpu_seconds(pids) - cpu) * 1000 / rows[0][0])
        jvm_cpu.append((cpu_seconds([jvm]) - cpu_jvm) * 1000 / rows[0][0])
        sql.append(rows[0][0] / seconds)
        cores.append(sql_cpu[-1] * sql[-1] / 1000)
        bare_run = bare.run()
        raw.append(bare_run["images_per_s"])
        raw_cpu.append(bare_run["cpu_ms_per_image"])
        bare_cores.append(raw_cpu[-1] * raw[-1] / 1000)
        log(f"  run {i + 1}: SQL {sql[-1]:.1f} img/s ({sql_cpu[-1]:.1f} CPU ms/img, {cores[-1]:.2f} cores), "
            f"bare engine {raw[-1]:.1f} img/s ({raw_cpu[-1]:.1f} CPU ms/img, {bare_cores[-1]:.2f} cores)")
    return {"sql": summary(sql), "bare": summary(raw), "rows": rows[0][0],
            "ratio": summary([s / b for s, b in zip(sql, raw)]),
            "sql_cpu_ms_per_image": summary(sql_cpu), "bare_cpu_ms_per_image": summary(raw_cpu),
            "cpu_ratio": summary([b / s for s, b in zip(sql_cpu, raw_cpu)]),
            "sql_cores": summary(cores), "bare_cores": summary(bare_cores), "sql_jvm_cpu_ms_per_image": summary(jvm_cpu)}


def interleaved(a: Server, b: Server, runs: int, settings: tuple = (), block: int = 1,
                warm_seconds: float = 20.0) -> dict:
    """The count query on two servers in turn (a, b, a, b, ...): img/s and CPU ms/img of each (all the
    server's processes, and its JVM alone), b/a ratios.  Each turn runs the query ``block`` times back to
    back, as on a busy server, after warm_up(``warm_seconds``).  ``settings`` (``SET k=v`` statements)
    apply to both servers' held connections for these passes only."""
    out = {k: [] for k in ("a", "b", "a_cpu", "b_cpu", "a_cores", "b_cores", "a_jvm_cpu", "b_jvm_cpu")}
    for server in (a, b):
        for statement in settings:
            server.execute(statement, server.held())
        warm_up(server, _count_sql(), warm_seconds)
    for i in range(runs):
        for key, server in (("a", a), ("b", b)):
            pids, jvm = server.all_pids(), server.jvm_pid()
            cpu, cpu_jvm = cpu_seconds(pids), cpu_seconds([jvm])
            seconds, images = 0.0, 0
            for _ in range(block):
                took, rows = server.timed(_count_sql())
                seconds, images = seconds + took, images + rows[0][0]
            out[key].append(images / seconds)
            out[f"{key}_cpu"].append((cpu_seconds(pids) - cpu) * 1000 / images)
            out[f"{key}_jvm_cpu"].append((cpu_seconds([jvm]) - cpu_jvm) * 1000 / images)
            out[f"{key}_cores"].append(out[f"{key}_cpu"][-1] * out[key][-1] / 1000)
        a_pass, b_pass = (f"{out[k][-1]:.1f} img/s ({out[f'{k}_cpu'][-1]:.1f} CPU ms/img, JVM "
                          f"{out[f'{k}_jvm_cpu'][-1]:.1f}, {out[f'{k}_cores'][-1]:.2f} cores)" for k in ("a", "b"))
        log(f"  run {i + 1}: {a_pass} vs {b_pass}")
    if settings:
        for server in (a, b):
            server.execute("RESET", server.held())
    result = {k: summary(v) for k, v in out.items()}
    result["ratio"] = summary([x / y for x, y in zip(out["a"], out["b"])])
    return result


def layouts(server: Server, folder, runs: int, paths: list) -> dict:
    """`sqlext ingest`'s table layout vs its former one, on one server, passes interleaved.

    The former layout is rebuilt from the same folder the way ingest wrote it before: Spark's
    binaryFile partitions (files packed by size) written as they come, 32 MiB row groups.
    """
    old = "bench.images_former_layout"
    conn = server.connect()
    try:
        cursor = conn.cursor()
        for statement in ("SET parquet.block.size=33554432", "SET parquet.page.size.row.check.min=2",
                          f"DROP TABLE IF EXISTS {old}",
                          f"CREATE TABLE {old} USING parquet AS SELECT path, CAST(NULL AS STRING) AS label, content "
                          f"FROM binaryFile.`{Path(folder).resolve()}`"):
            cursor.execute(statement)
    finally:
        conn.close()
    out = {"current": [], "former": [], "current_cpu": [], "former_cpu": []}
    for table in ("bench.images", old):
        warm_up(server, _count_sql(table=table))
    for i in range(runs):
        for key, table in (("current", "bench.images"), ("former", old)):
            pids = server.all_pids()
            cpu = cpu_seconds(pids)
            seconds, rows = server.timed(_count_sql(table=table))
            out[key].append(rows[0][0] / seconds)
            out[f"{key}_cpu"].append((cpu_seconds(pids) - cpu) * 1000 / rows[0][0])
        log(f"  run {i + 1}: ingest layout {out['current'][-1]:.1f} img/s ({out['current_cpu'][-1]:.1f} CPU ms/img) "
            f"vs former {out['former'][-1]:.1f} img/s ({out['former_cpu'][-1]:.1f} CPU ms/img)")
    result = {k: summary(v) for k, v in out.items()}
    result["ratio"] = summary([a / b for a, b in zip(out["current"], out["former"])])
    result["latency_current"] = latency(server, paths, 30)
    result["latency_former"] = latency(server, paths, 30, old)
    log(f"  one-row p50: {result['latency_current']['p50_ms']:.0f} ms vs former "
        f"{result['latency_former']['p50_ms']:.0f} ms")
    return result


def sql_only(server: Server, runs: int, model: str = "", table: str = "bench.images") -> dict:
    warm_up(server, _count_sql(model, table))
    values = []
    for i in range(runs):
        seconds, rows = server.timed(_count_sql(model, table))
        values.append(rows[0][0] / seconds)
        log(f"  run {i + 1}: SQL {values[-1]:.1f} img/s")
    return summary(values)


def session_cost(server: Server, times: int = 10) -> dict:
    """Opening a JDBC session (PyHive connect + `SELECT 1` + close): wall ms and server CPU ms, medians."""
    walls, cpus = [], []
    for _ in range(times):
        pids = server.all_pids()
        cpu = cpu_seconds(pids)
        started = time.perf_counter()
        server.query("SELECT 1")
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append((cpu_seconds(pids) - cpu) * 1000)
    return {"wall_ms": summary(walls), "cpu_ms": summary(cpus)}


def first_query(server: Server, path: str) -> float:
    seconds, rows = server.timed(f"SELECT image_label(content) FROM bench.images WHERE path = '{path}'")
    assert rows and rows[0][0], rows
    return seconds


def after_pause(servers: dict, paths: list, pause: float) -> dict:
    """The first one-row lookup on each of ``servers`` (label -> Server, in turn) after ``pause`` seconds
    without queries (Spark stops Python workers idle for a minute), and the warm p50 of 10 more."""
    for srv in servers.values():
        latency(srv, paths, 10)  # the workers started, the JIT past its first queries
    started = time.monotonic()
    time.sleep(pause)
    idle = time.monotonic() - started
    first = {label: first_query(srv, paths[i + 1]) * 1000 for i, (label, srv) in enumerate(servers.items())}
    warm = {label: latency(srv, paths, 10)["p50_ms"] for label, srv in servers.items()}
    return {"idle_s": idle, "first_ms": first, "warm_p50_ms": warm}


def latency(server: Server, paths: list, queries: int, table: str = "bench.images", start: int = 0) -> dict:
    """One-row queries on one open connection (as a BI tool holds one), rotating over ``paths`` from
    ``paths[start]``; ``jit_s``: seconds the server JVM's JIT compiler threads spent compiling meanwhile
    (None without jstat)."""
    conn = server.connect()
    jit_before = _jit_seconds(server.jvm_pid())
    try:
        times = []
        for i in range(start, start + queries):
            seconds, rows = server.timed(
                f"SELECT image_label(content) FROM {table} WHERE path = '{paths[i % len(paths)]}'", conn)
            assert rows and rows[0][0]
            times.append(seconds * 1000)
    finally:
        conn.close()
    jit_after = _jit_seconds(server.jvm_pid())
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(round(q * (len(times) - 1))))]  # noqa: E731
    return {"queries": queries, "p50_ms": pick(0.50), "p90_ms": pick(0.90), "p99_ms": pick(0.99),
            "max_ms": times[-1],
            "jit_s": None if jit_before is None or jit_after is None else jit_after - jit_before}


def _jit_seconds(pid: int) -> float:
    """Seconds the JVM ``pid``'s compiler threads have spent compiling (jstat -compiler), or None without jstat."""
    try:
        text = subprocess.run(["jstat", "-compiler", str(pid)], capture_output=True, text=True, timeout=60,
                              check=True).stdout
        return float(text.splitlines()[1].split()[3])
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        return None


def _jcmd_heap_used_mb(pid: int) -> float:
    """Java heap in use right after a full GC (jcmd), in MB; None if jcmd is not available."""
    import re

    try:
        subprocess.run(["jcmd", str(pid), "GC.run"], capture_output=True, timeout=60, check=True)
        text = subprocess.run(["jcmd", str(pid), "GC.heap_info"], capture_output=True, text=True, timeout=60,
                              check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"used (\d+)K", text)
    return int(match.group(1)) / 1024 if match else None


def driver_memory(server: Server, paths: list, queries: int = 20, warm: int = 10, rows: int = 12) -> dict:
    """RSS of the server's driver processes (JVM + Python) after each of ``queries`` identical queries,
    run after ``warm`` of them: the first queries of a new shape fill caches that stop growing (code
    generation, plan and metastore caches; +68 MB of live heap over the first 20 here, then +2 MB over
    the next 40, which is Spark's bounded per-query UI history)."""
    small = [p for p in paths if "500x375" in p][:rows]  # a query's fixed costs are what repeat: few rows do
    sql = ("SELECT count(image_label(content)) FROM bench.images WHERE path IN ("
           + ", ".join(repr(p) for p in small) + ")")
    jvm = server.jvm_pid()
    for _ in range(warm):
        server.query(sql)
    heap_before = None
    rss_jvm, rss_py = [], []
    for i in range(queries):
        server.query(sql)
        if i == 0:
            heap_before = _jcmd_heap_used_mb(jvm)
        rss_jvm.append(status_kb(jvm, "VmRSS") / 1024)
        rss_py.append(status_kb(server.proc.pid, "VmRSS") / 1024)
    heap_after = _jcmd_heap_used_mb(jvm)
    tail = rss_jvm[queries // 4:]
    slope = statistics.linear_regression(range(len(tail)), tail).slope if len(tail) > 2 else 0.0
    return {"queries": queries, "warm_up_queries": warm, "rows": len(small),
            "jvm_rss_mb": [round(x) for x in rss_jvm], "python_driver_rss_mb": [round(x) for x in rss_py],
            "jvm_rss_slope_mb_per_query": slope, "heap_after_gc_mb": [heap_before, heap_after]}


def worker_peaks(server: Server) -> list:
    return sorted((status_kb(p, "VmHWM") / 1024 for p in server.worker_pids()), reverse=True)


def torch_baseline(parquet: Path, backbone: str, weights: Path, runs: int, master: str = "local[2]") -> dict:
    cmd = [sys.executable, "-m", "bench.torch_udf", "--parquet", str(parquet), "--backbone", backbone,
           "--runs", str(runs), "--master", master]
    if weights:
        cmd += ["--weights", str(weights)]
    env = base_env(PYTHONPATH=str(ROOT))
    for attempt in (1, 2):  # PySpark's row-at-a-time UDF path once hung here (JVM and worker both reading)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                cwd=str(ROOT), start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the driver, its JVM and workers
            proc.communicate()
            log(f"  torch baseline ({backbone}) did not finish in 600 s (attempt {attempt})")
            continue
        if proc.returncode == 0:
            result = subprocess.CompletedProcess(cmd, 0, stdout, stderr)
            break
        log(f"  torch baseline ({backbone}) failed (attempt {attempt}): {stderr[-500:]}")
    else:
        raise RuntimeError(f"torch baseline ({backbone}) failed twice")
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for i, v in enumerate(out["images_per_s"]):
        log(f"  run {i + 1}: torch UDF {v:.1f} img/s")
    return summary(out["images_per_s"])


def warm_literal(server: Server, model: str, jpeg_hex: str) -> None:
    """Compile ``model`` in both Python workers without touching the table's cache keys."""
    server.query(f"SELECT count(image_label(content, '{model}')) FROM "
                 f"(SELECT X'{jpeg_hex}' AS content FROM range(0, 2, 1, 2))")


def cache(server: Server, models_one: list, models_both: list, jpeg_hex: str, models_warm: list) -> dict:
    """Per rep: a cold one-function pass, the same query again (answered by the JVM level), the same once
    more with the model named per row (the JVM level steps aside: the workers' level answers), and a cold
    two-function pass (other keys).  ``models_warm``: copies whose cold passes come first, not counted."""
    cold, warm, workers, both, scan, evidence = [], [], [], [], [], []
    cpu_cold, cpu_warm, cpu_both = [], [], []
    warm_up(server, _count_sql())  # the JVM's JIT, with the default model: other cache keys than the copies'
    # every copy compiled in both workers well before its pass, as on a server up a while (exploratory: a
    # cold pass right after its model was compiled took 3.0-3.7 s, on a model compiled earlier 2.6-2.8 s)
    for model in models_warm + models_one + models_both:
        warm_literal(server, model, jpeg_hex)
    # warm_up's passes after its first are answered by the cache, so the JIT has yet to compile the cold
    # path (exploratory: after one uncounted cold pass, 3.4, 2.7, then 2.2-2.5 s)
    for model in models_warm:
        server.query(_count_sql(model))
    for one, two in zip(models_one, models_both):
        pids = server.all_pids()
        c0 = cpu_seconds(pids)
        t1, r1 = server.timed(_count_sql(one))
        c1 = cpu_seconds(pids)
        before = wait_stats(server)
        c2 = cpu_seconds(pids)
        t2, r2 = server.timed(_count_sql(one))
        c3 = cpu_seconds(pids)
        after = wait_stats(server)
        delta = {k: sum(a.get(k, 0) for a in after.values()) - sum(b.get(k, 0) for b in before.values())
                 for k in ("rows", "content_rows", "cache_hits", "decoded", "engine_calls")}
        evidence.append(delta)
        ts, _ = server.timed("SELECT count(length(content)) FROM bench.images")  # the floor: reading the bytes
        tw, rw = server.timed(f"SELECT count(image_label(content, m)) FROM bench.images "
                              f"CROSS JOIN (SELECT '{one}' AS m) models")
        c4 = cpu_seconds(pids)
        t3, r3 = server.timed(f"SELECT count(image_label(content, '{two}')), "
                              f"count(classify_image(content, '{two}').label) FROM bench.images")
        c5 = cpu_seconds(pids)
        cpu_cold.append(c1 - c0)
        cpu_warm.append(c3 - c2)
        cpu_both.append(c5 - c4)
        assert r1 == r2 == rw and r3[0][0] == r1[0][0] == r3[0][1], (r1, r2, rw, r3)
        cold.append(t1)
        warm.append(t2)
        workers.append(tw)
        scan.append(ts)
        both.append(t3)
        log(f"  {one}: cold {t1:.2f}s ({c1 - c0:.2f} CPU s), again {t2:.2f}s ({c3 - c2:.2f} CPU s), {t1 / t2:.1f}x "
            f"(workers' level only {tw:.2f}s, {t1 / tw:.1f}x; reading the column alone {ts:.2f}s); both functions cold {t3:.2f}s ({c5 - c4:.2f} CPU s), "
            f"{t3 / t1:.2f}x one")
    return {"cold_s": summary(cold), "warm_s": summary(warm), "workers_s": summary(workers), "scan_s": summary(scan),
            "warm_over_scan": summary([w / s for w, s in zip(warm, scan)]),
            "both_s": summary(both),
            "speedup": summary([c / w for c, w in zip(cold, warm)]),
            "workers_speedup": summary([c / w for c, w in zip(cold, workers)]),
            "both_over_one": summary([b / c for b, c in zip(both, cold)]),
            "second_run_worker_counters": evidence,
            "cpu_speedup": summary([c / w for c, w in zip(cpu_cold, cpu_warm)]),
            "cpu_both_over_one": summary([b / c for b, c in zip(cpu_both, cpu_cold)])}


def stats_lines(log_text: str) -> dict:
    """The last `predict stats` line per worker pid -> its counters."""
    found = {}
    for line in log_text.splitlines():
        if "predict stats pid=" in line:
            fields = dict(kv.split("=", 1) for kv in line.split("predict stats ", 1)[1].split())
            found[fields.pop("pid")] = {k: int(v) for k, v in fields.items()}
    return found


def wait_stats(server: Server, seconds: float = 3.0) -> dict:
    time.sleep(seconds)  # worker stderr reaches the server log through the JVM, asynchronously
    return stats_lines(server.log())
