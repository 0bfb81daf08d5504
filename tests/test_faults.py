"""Faults: a Python worker killed mid-query, a server restarted (cleanly and after a crash),
a bundle modified on disk, a bundle half-written by a killed export.

Unit tests drive the registry directly; the rest share one `sqlext serve` on its own home
(it is restarted by the last tests, so they run in file order).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from pyhive.exc import OperationalError

from bench import procs
from conftest import Server, make_home
from sqlext import bundle, registry
from sqlext.registry import Registry, UnknownModel, resolve_key
from sqlext.session import with_task_retries
from sqlext.sqlrunner import short_error

COPIES = 40  # faults.many: every photo COPIES times, each copy made unique (a cache cannot shortcut it)


def _copy_bundle(models: Path, source: Path, name: str) -> bundle.Bundle:
    manifest = json.loads((source / bundle.MANIFEST).read_text())
    return bundle.write(models, name, source, manifest)


def _die_while_writing(models: Path, source: Path, name: str) -> subprocess.CompletedProcess:
    """Run bundle.write in a process that is SIGKILLed half way through copying model.onnx."""
    code = f"""
        import json, os, shutil, signal
        from sqlext import bundle

        def dying_copy(src, dst, **kwargs):
            data = open(src, "rb").read()
            with open(dst, "wb") as fh:
                fh.write(data[:len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)

        shutil.copy2 = dying_copy
        manifest = json.load(open({str(source / bundle.MANIFEST)!r}))
        bundle.write({str(models)!r}, {name!r}, {str(source)!r}, manifest)
    """
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, timeout=120)


def _truncated_version(models: Path, source: Path, name: str) -> Path:
    """models/NAME/1 with a manifest and a truncated model.onnx: a copy that was cut short."""
    folder = models / name / "1"
    folder.mkdir(parents=True)
    manifest = json.loads((source / bundle.MANIFEST).read_text())
    (folder / bundle.MANIFEST).write_text(json.dumps(dict(manifest, name=name, version=1)))
    data = (source / bundle.MODEL_FILE).read_bytes()
    (folder / bundle.MODEL_FILE).write_bytes(data[:len(data) // 3])
    return folder


# ------------------------------------------------------------------------------------ unit
def test_local_masters_get_task_retries(monkeypatch):
    monkeypatch.delenv("SQLEXT_MASTER", raising=False)
    monkeypatch.delenv("SQLEXT_TASK_MAX_FAILURES", raising=False)
    assert with_task_retries(None) == "local[*,4]"
    assert with_task_retries("local[2]") == "local[2,4]"
    assert with_task_retries("local") == "local[1,4]"
    assert with_task_retries("local[2,7]") == "local[2,7]"
    assert with_task_retries("spark://host:7077") == "spark://host:7077"
    monkeypatch.setenv("SQLEXT_TASK_MAX_FAILURES", "2")
    assert with_task_retries("local[*]") == "local[*,2]"


def test_scan_verifies_each_bundle_once_until_its_files_change(tmp_path, imagenet_bundle_dir, monkeypatch):
    models = tmp_path / "models"
    b = _copy_bundle(models, imagenet_bundle_dir / "imagenet" / "1", "m")
    monkeypatch.setattr(registry, "_SETTLE_NS", 0)  # trust timestamps at once (the default waits 2 s)
    hashed = []
    real = bundle.sha256_file
    monkeypatch.setattr(bundle, "sha256_file", lambda path: hashed.append(Path(path).name) or real(path))
    for _ in range(3):
        assert list(Registry.scan(models).bundles) == ["m:1"]
    assert hashed == ["model.onnx"]
    # same size, same mtime, one byte changed: only ctime tells, and it does
    model = b.path / bundle.MODEL_FILE
    stat, data = model.stat(), bytearray(model.read_bytes())
    data[1000] ^= 0xFF
    model.write_bytes(bytes(data))
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    scanned = Registry.scan(models)
    assert list(scanned.bundles) == [] and "sha256" in scanned.refused[str(b.path)]
    assert len(hashed) == 2
    assert "sha256" in Registry.scan(models).refused[str(b.path)] and len(hashed) == 2  # refusal cached too


def test_recently_changed_files_are_verified_again(tmp_path, imagenet_bundle_dir, monkeypatch):
    models = tmp_path / "models"
    _copy_bundle(models, imagenet_bundle_dir / "imagenet" / "1", "m")
    hashed = []
    real = bundle.sha256_file
    monkeypatch.setattr(bundle, "sha256_file", lambda path: hashed.append(path) or real(path))
    Registry.scan(models)
    Registry.scan(models)
    assert len(hashed) == 2  # written just now: within the settle window, not trusted yet


def test_refused_bundle_names_its_reason(tmp_path, imagenet_bundle_dir):
    models = tmp_path / "models"
    good = _copy_bundle(models, imagenet_bundle_dir / "imagenet" / "1", "good")
    bad = _copy_bundle(models, imagenet_bundle_dir / "imagenet" / "1", "bad")
    with open(bad.path / bundle.MODEL_FILE, "ab") as fh:
        fh.write(b"tampered")
    scanned = Registry.scan(models)
    refused = scanned.refused_models()
    assert set(refused) == {"bad", "bad:1"} and "sha256" in refused["bad"]
    assert scanned.resolve("good").key == good.key
    for spec in ("bad", "bad:1"):
        with pytest.raises(UnknownModel, match=r"model '.*' was refused: .*sha256.*available models: good"):
            resolve_key(spec, scanned.latest(), scanned.bundles, refused)
    with pytest.raises(UnknownModel, match="unknown model 'nope'"):
        resolve_key("nope", scanned.latest(), scanned.bundles, refused)


def test_half_written_bundles_are_never_picked_up(tmp_path, imagenet_bundle_dir):
    models = tmp_path / "models"
    source = imagenet_bundle_dir / "imagenet" / "1"
    first = _copy_bundle(models, source, "m")
    result = _die_while_writing(models, source, "m")
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    staging = [p for p in (models / "m").iterdir() if p.name.startswith(".staging-")]
    assert staging and (staging[0] / bundle.MODEL_FILE).stat().st_size < (source / bundle.MODEL_FILE).stat().st_size
    _truncated_version(models, source, "cut")
    scanned = Registry.scan(models)
    assert list(scanned.bundles) == [first.key]
    assert scanned.latest() == {"m": "m:1"}
    assert set(scanned.refused) == {str(models / "cut" / "1")}  # the staging folder is not even a candidate
    assert "sha256" in scanned.refused_models()["cut"]


# ------------------------------------------------------------------------------------ a live server
class Live:
    """The module's server, replaced by the restart tests."""

    def __init__(self, home, photos_dir):
        self.home, self.photos_dir, self.server = home, photos_dir, None

    def start(self):
        self.server = Server(self.home.root).start()
        return self.server


@pytest.fixture(scope="module")
def live(tmp_path_factory, imagenet_bundle_dir, photos_dir):
    home = make_home(tmp_path_factory, imagenet_bundle_dir, "faults_home")
    _copy_bundle(home.models, home.models / "imagenet" / "1", "spare")
    state = Live(home, photos_dir)
    srv = state.start()
    conn = srv.connect()
    try:
        cur = conn.cursor()
        cur.execute("CREATE DATABASE faults")
        cur.execute(f"CREATE TABLE faults.photos USING parquet AS SELECT path, content FROM binaryFile.`{photos_dir}`")
        cur.execute(f"""CREATE TABLE faults.many USING parquet AS
                        SELECT /*+ REPARTITION(4) */ p.path, r.id AS copy,
                               concat(p.content, encode(CAST(r.id AS STRING), 'UTF-8')) AS content
                        FROM faults.photos p CROSS JOIN range({COPIES}) r""")
    finally:
        conn.close()
    yield state
    state.server.stop()


@pytest.fixture(scope="module")
def labels(live):
    """path -> label of every photo, from a plain single query."""
    return dict(live.server.query("SELECT path, image_label(content) FROM faults.photos"))


def _expected_counts(labels) -> dict:
    counts = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + COPIES
    return counts


def test_a_python_worker_killed_mid_query_is_retried(live, labels):
    srv = live.server
    offset = len(srv.log())
    outcome = {}

    def long_query():
        try:
            outcome["rows"] = srv.query("SELECT image_label(content) AS label, count(*) FROM faults.many GROUP BY 1")
        except Exception as exc:  # reported below
            outcome["error"] = exc

    query = threading.Thread(target=long_query)
    query.start()
    victim, deadline = None, time.monotonic() + 240
    while victim is None and query.is_alive() and time.monotonic() < deadline:
        workers = procs.tree(srv.proc.pid).workers
        ticks = {w: procs.cpu_ticks(w) for w in workers}
        time.sleep(0.4)
        busy = [w for w in workers if procs.cpu_ticks(w) - ticks[w] >= 5]  # >= 50 ms CPU in 0.4 s
        if busy:
            victim = busy[0]
            os.kill(victim, signal.SIGKILL)  # a worker of the server this module started
    query.join(600)
    assert victim, "the query finished before a busy Python worker was seen; make faults.many bigger"
    assert "error" not in outcome, short_error(outcome["error"])
    assert dict(outcome["rows"]) == _expected_counts(labels)
    new_log = srv.log()[offset:]
    assert "Python worker exited unexpectedly" in new_log or "Lost task" in new_log, new_log[-3000:]
    assert victim not in procs.tree(srv.proc.pid).workers
    # and the next query works
    assert dict(srv.query("SELECT path, image_label(content) FROM faults.photos")) == labels


def _wait_for_error(srv, sql, needle, timeout=60) -> str:
    """Run ``sql`` until it fails with a message containing ``needle`` (the watcher scans every second)."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            srv.query(sql)
            last = "no error"
        except OperationalError as exc:
            last = short_error(exc)
            if needle in last:
                return last
        time.sleep(1)
    raise AssertionError(f"{sql!r} never failed with {needle!r}; last: {last}")


def test_a_modified_bundle_is_refused_with_its_reason_while_others_serve(live, labels):
    srv = live.server
    spare = dict(srv.query("SELECT path, image_label(content, 'spare') FROM faults.photos"))
    assert spare == labels
    offset = len(srv.log())
    with open(live.home.models / "spare" / "1" / bundle.MODEL_FILE, "ab") as fh:
        fh.write(b"\0modified after publishing")
    message = _wait_for_error(srv, "SELECT image_label(content, 'spare') FROM faults.photos", "was refused")
    assert "model 'spare' was refused" in message and "sha256" in message and "modified" in message, message
    assert "available models: imagenet" in message
    # a model spec that is only known per row goes through the Python side: same reason there
    with pytest.raises(OperationalError) as info:
        srv.query("SELECT image_label(content, concat('spare', substr(path, 1, 0))) FROM faults.photos")
    assert "was refused" in short_error(info.value) and "sha256" in short_error(info.value)
    assert dict(srv.query("SELECT path, image_label(content) FROM faults.photos")) == labels
    assert dict(srv.query("SELECT path, image_label(content, 'imagenet:1') FROM faults.photos")) == labels
    time.sleep(5)  # five more scans: the refusal is logged when found (and re-checked while the file is
    # fresh, see registry._SETTLE_NS), not on every scan
    found = [line for line in srv.log()[offset:].splitlines() if line.startswith("ERROR sqlext.registry")]
    assert 1 <= len(found) <= 3, found


def test_a_half_written_bundle_is_never_picked_up(live, labels):
    srv = live.server
    models, source = live.home.models, live.home.models / "imagenet" / "1"
    assert _die_while_writing(models, source, "imagenet").returncode == -signal.SIGKILL
    assert any(p.name.startswith(".staging-") for p in (models / "imagenet").iterdir())
    _truncated_version(models, source, "half")
    message = _wait_for_error(srv, "SELECT image_label(content, 'half') FROM faults.photos", "was refused")
    assert "sha256" in message, message
    rows = srv.query("SELECT DISTINCT classify_image(content).model FROM faults.photos")
    assert rows == [("imagenet:1",)]  # the killed export did not become imagenet:2
    with pytest.raises(OperationalError, match="unknown model 'imagenet:2'"):
        srv.query("SELECT image_label(content, 'imagenet:2') FROM faults.photos")
    assert dict(srv.query("SELECT path, image_label(content) FROM faults.photos")) == labels


def _check_everything_is_back(srv, labels):
    assert {r[1] for r in srv.query("SHOW TABLES IN faults")} >= {"photos", "many"}
    assert srv.query("SELECT count(*) FROM faults.many") == [(len(labels) * COPIES,)]
    assert {"classify_image", "image_label"} <= {r[0] for r in srv.query("SHOW FUNCTIONS LIKE '*image*'")}
    assert dict(srv.query("SELECT path, image_label(content) FROM faults.photos")) == labels
    assert srv.query("SELECT DISTINCT classify_image(content, 'imagenet').model FROM faults.photos") \
        == [("imagenet:1",)]
    for refused in ("spare", "half"):
        with pytest.raises(OperationalError) as info:
            srv.query(f"SELECT image_label(content, '{refused}') FROM faults.photos")
        assert f"model '{refused}' was refused" in short_error(info.value)


def test_restart_brings_back_tables_bundles_and_functions(live, labels):
    assert live.server.stop() == 0, live.server.log()[-3000:]
    _check_everything_is_back(live.start(), labels)


def test_restart_after_a_crash_brings_everything_back(live, labels):
    old = live.server
    os.killpg(old.proc.pid, signal.SIGKILL)  # the whole server: driver, JVM, daemon, workers (all ours)
    old.proc.wait(60)
    old.stop()
    _check_everything_is_back(live.start(), labels)
