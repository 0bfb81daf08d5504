"""`make bench`: every sqlext benchmark in one run on this machine, results in BENCHMARKS.md.

Environment: ``BENCH_DIR`` (work folder, default a new temp folder; reusing one skips finished
setup), ``BENCH_IMAGES`` (table size, default 150: a third each of 500x375, 1600x1200, 4000x3000),
``BENCH_RUNS`` (repetitions, default 3), ``BENCH_SKIP`` (comma list of phases to skip:
levers, lite0, resnet50, scaling, gc, daemon, layout, arrow64, cache, torch, idle, training,
train_variants; default: the optional phases, ``OPTIONAL_PHASES``; ``BENCH_SKIP=`` runs every phase),
``BENCH_OUT`` (report path, default BENCHMARKS.md in the repository).

The default run measures every target of the speed issue; the optional phases measure the levers
(each kept setting against its alternative) and take it past 20 minutes on a 2-core machine.
"""
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import data, levers, report, serving, setup
from .bare import BareEngine
from .common import ROOT, Server, cpu_pressure, log, machine, sqlext

# Spark stops Python workers idle for 60 s, looking every 10 s: a longer pause than both
IDLE_PAUSE_SECONDS = 75
# the levers' phases, skipped unless BENCH_SKIP says otherwise: with them make bench takes ~30 min on a
# 2-core AVX2 machine (levers ~90 s, daemon ~210 s, layout ~120 s, arrow64 ~100 s, train_variants ~55 s,
# gc ~80 s, idle ~90 s); without them the targets alone take under 20
OPTIONAL_PHASES = ",".join(report.LEVER_PHASES)
DEFAULT_IMAGES = 150


def _get_median(s):
    return s.get("median") if isinstance(s, dict) else None


def _bundle_dir(home: Path, key: str) -> Path:
    name, version = key.split(":")
    return home / "models" / name / version


def _second_home(home: Path, work: Path, name: str, all_models: bool = False) -> Path:
    """A second state folder (embedded Derby admits one server per folder) with the Lite0 bundle, or with
    every bundle ``home`` has."""
    import shutil

    home2 = work / f"home-{name}"
    for bundle in ((home / "models").iterdir() if all_models else [home / "models" / "lite0"]):
        if not (home2 / "models" / bundle.name).exists():
            shutil.copytree(bundle, home2 / "models" / bundle.name)
    return home2


def _share_images(home: Path, server) -> None:
    """bench.images on ``server`` over the Parquet files of ``home``'s table."""
    location = (home / "warehouse" / "bench.db" / "images").resolve().as_uri()
    server.execute("CREATE DATABASE IF NOT EXISTS bench")
    server.execute(f"CREATE TABLE IF NOT EXISTS bench.images USING parquet LOCATION '{location}'")


def _command() -> str:
    """The make command line that reproduces this run's settings."""
    settings = [f"{k}={os.environ[k]}" for k in ("BENCH_IMAGES", "BENCH_RUNS", "BENCH_SKIP") if k in os.environ]
    return " ".join(["make bench", *settings])


def main() -> int:
    started = time.monotonic()
    work = Path(os.environ.get("BENCH_DIR") or tempfile.mkdtemp(prefix="sqlext-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    n = int(os.environ.get("BENCH_IMAGES", DEFAULT_IMAGES))
    runs = int(os.environ.get("BENCH_RUNS", "3"))
    skip = {s.strip() for s in os.environ.get("BENCH_SKIP", OPTIONAL_PHASES).split(",") if s.strip()}
    out_path = Path(os.environ.get("BENCH_OUT") or ROOT / "BENCHMARKS.md")
    home = work / "home"
    # a cache folder of the run's own: its JVM class archive is written by the setup's first command
    os.environ["SQLEXT_CACHE_DIR"] = str(work / "cache")
    results = {"machine": machine(), "config": {"images": n, "runs": runs, "work": str(work), "skip": sorted(skip),
                                                 "command": _command()}, "phases": {}, "seconds": {}}
    log(f"work folder {work}; {n} images, {runs} runs per figure")

    def phase(name, fn):
        if name in skip:
            log(f"== {name}: skipped (BENCH_SKIP)")
            return None
        log(f"== {name}")
        t = time.monotonic()
        try:
            value = fn()
            results["phases"][name] = value
        except Exception as exc:  # noqa: BLE001 - one failed phase must not lose the others' figures
            traceback.print_exc()
            results["phases"][name] = {"error": f"{type(exc).__name__}: {str(exc)[:2000]}"}
            value = None
        results["seconds"][name] = round(time.monotonic() - t, 1)
        (work / "results.json").write_text(json.dumps(results, indent=2, default=str))
        return value

    # ------------------------------------------------------------------ fixtures
    def fixtures():
        paths = data.generate(work / "data", n)
        calibration = setup.calibration_images(work / "calibration")
        info = data.describe(paths)
        if not (home / "warehouse" / "bench.db" / "images").exists():
            log("ingest bench.images")
            sqlext(home, "ingest", work / "data" / "images", "--table", "bench.images")
        info["bundles"] = setup.bundles(home, work, calibration, work / "data" / "images")
        if "training" not in skip:
            from . import training

            training.prepare(work / "training" / "fashion")
            if not (home / "warehouse" / "bench.db" / "fashion").exists():
                log("ingest bench.fashion (the training images, to compare featurizing with serving)")
                sqlext(home, "ingest", work / "training" / "fashion" / "train", "--table", "bench.fashion")
        return info

    fx = phase("setup", fixtures)
    if not fx or "error" in fx:
        report.write(out_path, results)
        return 1
    paths = sorted((work / "data" / "images").glob("*.jpg"))
    bundles = fx["bundles"]
    lite0, resnet = bundles["lite0"]["serving"], bundles["resnet50"]["serving"]
    off = {"SQLEXT_PREDICTION_CACHE": "off", "SQLEXT_MASTER": "local[2]"}

    # ------------------------------------------------------------------ levers (one core, in process)
    def lever_phase():
        out = {"decode": levers.decode(paths, _bundle_dir(home, lite0))}
        log(f"  decode: full {out['decode']['full']['median']:.1f} img/s, DCT-scaled "
            f"{out['decode']['dct']['median']:.1f} img/s, top-1 agreement {out['decode']['top1_agreement']:.3f}")
        versions = {}
        for name in ("lite0", "resnet50"):
            versions[f"{name} fp32"] = _bundle_dir(home, bundles[name]["fp32"])
            if bundles[name].get("int8"):
                versions[f"{name} int8"] = _bundle_dir(home, bundles[name]["int8"])
        out["engines"] = levers.engines(versions)
        out["hash_mb_per_s"] = levers.hashing(paths[:30])
        out["share"] = {name: levers.decode_engine_share(paths, _bundle_dir(home, key))
                        for name, key in (("lite0", lite0), ("resnet50", resnet))}
        return out

    phase("levers", lever_phase)

    # ------------------------------------------------------------------ serving: Lite0, 2 cores
    table_paths = []

    def lite0_phase():
        out = {}
        with Server(home, ["--default-model", lite0], env=off, name="lite0") as srv:
            out["ready_s"] = srv.ready_seconds
            table_paths.extend(sorted(r[0] for r in srv.query("SELECT path FROM bench.images")))
            small = next(p for p in table_paths if "500x375" in p)
            out["first_query_s"] = serving.first_query(srv, small)
            log(f"  ready after {out['ready_s']:.1f}s, first query {out['first_query_s']:.2f}s")
            bare = BareEngine(_bundle_dir(home, lite0), paths)
            try:
                out["throughput"] = serving.throughput(srv, bare, runs)
            finally:
                bare.close()
            # the JIT compiles a lookup's code paths over its first hundred-odd runs: the first 60 lookups
            # after the scans are reported apart; the target is warm, timed after 60 more
            out["latency_first"] = serving.latency(srv, table_paths, 60)
            serving.latency(srv, table_paths, 60, start=60)
            out["latency"] = serving.latency(srv, table_paths, 60, start=120)
            out["session"] = serving.session_cost(srv)
            log(f"  opening a session: {out['session']['wall_ms']['median']:.0f} ms, "
                f"{out['session']['cpu_ms']['median']:.0f} server CPU ms")
            log(f"  latency p50 {out['latency']['p50_ms']:.0f} ms, p99 {out['latency']['p99_ms']:.0f} ms "
                f"(first 60 lookups: p50 {out['latency_first']['p50_ms']:.0f} ms)")
            out["driver_memory"] = serving.driver_memory(srv, table_paths, 20)
            out["worker_peak_mb"] = serving.worker_peaks(srv)
            log(f"  worker peak RSS {out['worker_peak_mb']}")
            if "training" not in skip:  # the featurizer's speed is compared with serving the same images
                out["fashion_fp32"] = serving.sql_only(srv, runs, bundles["lite0"]["fp32"], table="bench.fashion")
        return out

    phase("lite0", lite0_phase)

    def resnet_phase():
        out = {}
        with Server(home, ["--default-model", resnet], env=off, name="resnet50") as srv:
            out["ready_s"] = srv.ready_seconds
            bare = BareEngine(_bundle_dir(home, resnet), paths)
            try:
                out["throughput"] = serving.throughput(srv, bare, runs)
            finally:
                bare.close()
            out["worker_peak_mb"] = serving.worker_peaks(srv)
            log(f"  worker peak RSS {out['worker_peak_mb']}")
        return out

    phase("resnet50", resnet_phase)

    def pair(env_b: dict, name_b: str, more=None, all_models: bool = False, block: int = 1, age: int = 0) -> dict:
        """bench.images on the usual server (a: local[2], Arrow batch 16) and on a variant (b) in turn.

        The variant runs in a second state folder (embedded Derby admits one server per folder) over the
        same Parquet files, so both servers are up together and their passes interleave.  It gets the Lite0
        bundle, or with ``all_models`` every bundle the usual server has (broadcast, so held in its heap).
        ``age``: scans of the image column each server runs first, as a server that has been up a while.
        """
        home2 = _second_home(home, work, name_b, all_models)
        with Server(home, ["--default-model", lite0], env=off, name="usual") as a, \
                Server(home2, ["--default-model", lite0], env=dict(off, **env_b), name=name_b) as b:
            _share_images(home, b)
            for _ in range(age):
                for server in (a, b):
                    server.query("SELECT count(length(content)) FROM bench.images", server.held())
            # aged servers have the scan's code compiled: two warm-up queries each are enough then
            result = serving.interleaved(a, b, runs, block=block, warm_seconds=0 if age else 20)
            result["a_worker_peak_mb"], result["b_worker_peak_mb"] = serving.worker_peaks(a), serving.worker_peaks(b)
            if more:
                result.update(more(a, b))
        return result

    phase("scaling", lambda: pair({"SQLEXT_MASTER": "local[1]"}, "local1"))

    def gc_phase():
        """G1's default regions against sqlext.session.JAVA_OPTIONS, on servers holding nine bundles (the
        cache phase's copies of Lite0 made now) that have been up a while, queries back to back."""
        setup.cache_model_copies(home, lite0, 2 * runs)
        return pair({"SQLEXT_JAVA_OPTIONS": " "}, "g1default", all_models=True, block=2, age=20)

    phase("gc", gc_phase)

    def daemon_more(a, b) -> dict:
        """Where per-task costs show: many small tasks (4 MiB splits), and one-row lookups."""
        paths = table_paths or sorted(r[0] for r in a.query("SELECT path FROM bench.images"))
        return {"small_tasks": serving.interleaved(a, b, runs, ("SET spark.sql.files.maxPartitionBytes=4m",)),
                "a_latency": serving.latency(a, paths, 30), "b_latency": serving.latency(b, paths, 30)}

    phase("daemon", lambda: pair({"SQLEXT_PYTHON_DAEMON": "pyspark.daemon"}, "sparkdaemon", daemon_more))

    def layout_phase():
        with Server(home, ["--default-model", lite0], env=off, name="layout") as srv:
            return serving.layouts(srv, work / "data" / "images", runs, table_paths or
                                   sorted(r[0] for r in srv.query("SELECT path FROM bench.images")))

    phase("layout", layout_phase)
    phase("arrow64", lambda: pair({"SQLEXT_ARROW_BATCH": "64"}, "arrow64"))

    # ------------------------------------------------------------------ prediction cache
    def cache_phase():
        copies = setup.cache_model_copies(home, lite0, 2 * runs + 3)  # same model, fresh cache keys per pass
        ones, boths, warm = copies[:runs], copies[runs:2 * runs], copies[2 * runs:]
        env = {"SQLEXT_MASTER": "local[2]", "SQLEXT_PREDICT_STATS": "1",
               "SQLEXT_PREDICTION_CACHE_DIR": str(work / "prediction-cache")}
        jpeg_hex = data.small_jpeg_hex()
        with Server(home, ["--default-model", lite0], env=env, name="cache") as srv:
            return serving.cache(srv, ones, boths, jpeg_hex, warm)

    phase("cache", cache_phase)

    # ------------------------------------------------------------------ the usual way: torch row UDF
    def torch_phase():
        parquet = home / "warehouse" / "bench.db" / "images"
        return {"lite0": serving.torch_baseline(parquet, "efficientnet-lite0", None, runs),
                "resnet50": serving.torch_baseline(parquet, "resnet50", work / "resnet50_random.pth", runs)}

    phase("torch", torch_phase)

    def idle_phase():
        """The first one-row lookup after a pause longer than Spark's one-minute idle-worker timeout, on a
        server with sqlext.keepalive and one without (no other work meanwhile: it would disturb its figures)."""
        home2 = _second_home(home, work, "nokeepalive")
        with Server(home, ["--default-model", lite0], env=off, name="keepalive") as a, \
                Server(home2, ["--default-model", lite0], env=dict(off, SQLEXT_WORKER_KEEPALIVE_SECONDS="0"),
                       name="nokeepalive") as b:
            _share_images(home, b)
            return serving.after_pause({"keepalive": a, "none": b}, table_paths or
                                       sorted(r[0] for r in a.query("SELECT path FROM bench.images")),
                                       IDLE_PAUSE_SECONDS)

    phase("idle", idle_phase)

    # ------------------------------------------------------------------ training
    def training_phase():
        from . import training

        rate = _get_median((results["phases"].get("lite0") or {}).get("fashion_fp32"))
        return training.run(work / "training", runs=1, serving_rate=rate, variants="train_variants" not in skip)

    phase("training", training_phase)

    results["machine"]["cpu_pressure_end"] = cpu_pressure()
    results["seconds"]["total"] = round(time.monotonic() - started, 1)
    (work / "results.json").write_text(json.dumps(results, indent=2, default=str))
    report.write(out_path, results)
    log(f"wrote {out_path} ({results['seconds']['total']:.0f}s; raw figures in {work / 'results.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
