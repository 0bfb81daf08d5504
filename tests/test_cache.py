"""The prediction cache (sqlext/prediction_cache.py): a repeated query, or a second function on the same
column, is answered without decoding or running the model again.  Evidence is the Python workers' own
counters (``SQLEXT_PREDICT_STATS=1`` logs them to the server log), never timing."""
import re
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import Server, make_home, sqlext_cmd

from sqlext import prediction_cache

LABELS = "SELECT path, image_label(content) FROM demo.photos"  # no ORDER BY: its sampling job runs the UDF too
PHOTOS = 7


def _totals(log: str) -> dict:
    """Sum over worker pids of each pid's latest cumulative counters."""
    last = {}
    for line in log.splitlines():
        match = re.search(r"predict stats pid=(\d+) (.*)$", line)
        if match:
            last[match.group(1)] = {k: int(v) for k, v in (kv.split("=") for kv in match.group(2).split())}
    totals = {}
    for counters in last.values():
        for key, value in counters.items():
            totals[key] = totals.get(key, 0) + value
    return totals


def _settled(server, rows_at_least: int, timeout: float = 60) -> dict:
    """Counters once the workers' log lines for at least ``rows_at_least`` rows have reached the log."""
    deadline, seen, stable_since = time.monotonic() + timeout, None, None
    while time.monotonic() < deadline:
        totals = _totals(server.log())
        if totals != seen:
            seen, stable_since = totals, time.monotonic()
        elif totals.get("rows", 0) >= rows_at_least and time.monotonic() - stable_since > 3:
            return totals  # enough rows, and nothing new for 3 s: worker lines reach the log asynchronously
        time.sleep(0.2)
    raise AssertionError(f"worker counters did not reach {rows_at_least} rows: {_totals(server.log())}")


@pytest.fixture(scope="module")
def cache_server(tmp_path_factory, imagenet_bundle_dir, photos_dir):
    home = make_home(tmp_path_factory, imagenet_bundle_dir, "cache_home")
    sqlext_cmd(home.root, "ingest", photos_dir, "--table", "demo.photos")
    srv = Server(home.root, env={"SQLEXT_PREDICT_STATS": "1", "SQLEXT_MASTER": "local[2]",
                                 "SQLEXT_PREDICTION_CACHE_DIR": str(home.root / "prediction-cache")}).start()
    yield srv
    srv.stop()


def test_second_identical_query_is_answered_in_the_jvm(cache_server):
    first = cache_server.query(LABELS)
    after_first = _settled(cache_server, PHOTOS)
    assert after_first["decoded"] + after_first.get("cache_hits", 0) >= PHOTOS
    # the JVM hashed each image once and sent its digest along: the workers hashed none
    assert after_first.get("hashed_rows", 0) == 0, after_first

    second = cache_server.query(LABELS)
    after_second = _settled(cache_server, after_first["rows"] + PHOTOS)
    assert sorted(second) == sorted(first) and len(second) == PHOTOS
    stats = "\n".join(line for line in cache_server.log().splitlines() if "predict stats" in line)
    assert after_second["decoded"] == after_first["decoded"], (after_first, after_second, stats)
    assert after_second["engine_calls"] == after_first["engine_calls"], (after_first, after_second)
    # the JVM level sent NULL instead of every image's bytes: nothing to hash, look up or decode in Python
    assert after_second["content_rows"] == after_first["content_rows"], (after_first, after_second, stats)


def test_cached_struct_equals_the_computed_one(cache_server):
    sql = ("SELECT path, classify_image(content).label, classify_image(content).probability, "
           "classify_image(content).model FROM demo.photos")
    computed = cache_server.query(sql.replace("classify_image(content)", "classify_image(content, m)")
                                  + " CROSS JOIN (SELECT 'imagenet' AS m) models")
    assert sorted(cache_server.query(sql)) == sorted(computed)


def test_model_named_per_row_uses_the_workers_cache(cache_server):
    # a model that is a column is only known per row, so the JVM level steps aside and the bytes go to
    # the Python workers, whose own cache (memory, then the shared SQLite file) answers them
    before = _totals(cache_server.log())
    rows = cache_server.query("SELECT path, image_label(content, m) FROM demo.photos "
                              "CROSS JOIN (SELECT 'imagenet' AS m) models")
    after = _settled(cache_server, before.get("rows", 0) + PHOTOS)
    assert len(rows) == PHOTOS and all(label for _, label in rows)
    assert after["content_rows"] - before.get("content_rows", 0) == PHOTOS
    assert after["hashed_rows"] - before.get("hashed_rows", 0) == PHOTOS
    # stored under the JVM's digests by the earlier queries, found under the workers' own: the same keys
    assert after["cache_hits"] - before.get("cache_hits", 0) == PHOTOS
    assert after["decoded"] == before.get("decoded", 0)


def test_second_function_on_the_same_column_is_served_from_the_cache(cache_server):
    before = _totals(cache_server.log())
    # spelled 'imagenet:1' rather than left to the default: the key is the bundle, not the spelling, so
    # both functions find every photo in the cache and neither decodes one.  Both build the same Python
    # call, which Spark makes once per row.
    rows = cache_server.query("SELECT path, image_label(content, 'imagenet:1'), "
                              "classify_image(content, 'imagenet:1').label FROM demo.photos")
    after = _settled(cache_server, before.get("rows", 0) + PHOTOS)
    assert len(rows) == PHOTOS and all(label == struct_label and label for _, label, struct_label in rows)
    assert after["decoded"] == before.get("decoded", 0)
    assert after["engine_calls"] == before.get("engine_calls", 0)
    assert after["content_rows"] == before.get("content_rows", 0)


def test_image_literal_from_a_subquery(cache_server, photos_dir):
    # Spark's optimizer turns the column into a literal after analysis; the cache UDFs must not be folded
    # into constants then (Hive's folded struct of bytes failed to unwrap)
    photo = sorted(Path(photos_dir).rglob("*.jpg"))[0]
    sql = (f"SELECT count(image_label(content, 'imagenet')), count(classify_image(content).probability) "
           f"FROM (SELECT X'{photo.read_bytes().hex()}' AS content FROM range(0, 4, 1, 2))")
    for _ in range(2):  # computed, then answered by the JVM level
        assert cache_server.query(sql) == [(4, 4)]


def test_undecodable_images_are_not_cached(cache_server):
    sql = "SELECT image_label(X'00112233445566778899')"
    for expected in (1, 2):
        assert cache_server.query(sql) == [(None,)]
        deadline = time.monotonic() + 30
        while cache_server.log().count("not a decodable image (unknown format, starts 00112233)") < expected:
            assert time.monotonic() < deadline, "the bad image was not tried again"
            time.sleep(0.2)


# ----------------------------------------------------------------------------------- unit, no Spark
def test_memory_level_is_a_bounded_lru():
    cache = prediction_cache.PredictionCache(max_entries=2)
    tag = prediction_cache.model_tag('{"name": "m"}')
    a, b, c = (prediction_cache.digest(x) for x in (b"a", b"b", b"c"))
    cache.store(tag, [(a, "A", 0.5), (b, "B", 0.6)])
    assert cache.lookup(tag, [a]) == {0: ("A", 0.5)}  # a is now the most recent
    cache.store(tag, [(c, "C", 0.7)])                 # evicts b
    assert cache.lookup(tag, [a, b, c, None]) == {0: ("A", 0.5), 2: ("C", 0.7)}
    other = prediction_cache.model_tag('{"name": "m", "version": 2}')
    assert cache.lookup(other, [a]) == {}            # another bundle never shares an entry


def test_shared_level_serves_another_process(tmp_path):
    tag = prediction_cache.model_tag("{}")
    d = prediction_cache.digest(b"image bytes")
    writer = prediction_cache.PredictionCache(max_entries=10, shared_dir=tmp_path, shared_entries=100)
    writer.store(tag, [(d, "cat", 0.9)])
    reader = prediction_cache.PredictionCache(max_entries=10, shared_dir=tmp_path, shared_entries=100)
    assert reader.lookup(tag, [d]) == {0: ("cat", 0.9)}
    assert reader.stats["shared_hits"] == 1


def test_series_digests_are_computed_once_per_series():
    contents = pd.Series([b"x", None, b"y"])
    first = prediction_cache.series_digests(contents)
    assert first[1] is None and first[0] == prediction_cache.digest(b"x")
    assert prediction_cache.series_digests(contents) is first


def test_cache_off(monkeypatch):
    monkeypatch.setenv("SQLEXT_PREDICTION_CACHE", "off")
    assert prediction_cache.PredictionCache.from_env() is None
