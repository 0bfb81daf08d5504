"""The spine end to end: `sqlext serve` + real clients (PyHive, beeline, SQLAlchemy)."""
import subprocess
import uuid
from pathlib import Path

import pyspark
import pytest

from bench import procs

# top-1 labels EfficientNet-Lite0 gives to the sample photos (any of the listed is sensible)
EXPECTED = {
    "coffee.png": {"espresso", "cup", "coffee mug"},
    "chelsea_cat.png": {"tiger cat", "tabby, tabby cat", "Egyptian cat"},
    "flower.jpg": {"daisy"},
    "rocket.jpg": {"missile", "projectile, missile", "space shuttle"},
}


def _labels(server, model=""):
    arg = f", '{model}'" if model else ""
    rows = server.query(f"SELECT path, image_label(content{arg}) FROM demo.photos")
    return {Path(p).name: label for p, label in rows}


def _operation_logs(server, conn) -> Path:
    """The session's operation-log folder: HiveServer2 names it after the session handle."""
    session = uuid.UUID(bytes=conn.sessionHandle.sessionId.guid)
    return server.home / "logs" / "operation_logs" / str(server.port) / str(session)


def test_functions_visible_in_two_independent_connections(server):
    first, second = server.connect(), server.connect()
    try:
        for conn in (first, second):
            cur = conn.cursor()
            cur.execute("SELECT count(image_label(content)) FROM demo.photos")
            assert cur.fetchall() == [(7,)]
            assert any(_operation_logs(server, conn).iterdir())  # the open query's log, not in /tmp
        cur = first.cursor()
        cur.execute("SHOW FUNCTIONS LIKE '*image*'")
        assert {"classify_image", "image_label"} <= {r[0] for r in cur.fetchall()}
    finally:
        first.close()
        second.close()


def test_sessions_are_isolated(server):
    a, b = server.connect(), server.connect()
    try:
        a.cursor().execute("CREATE TEMPORARY VIEW only_in_a AS SELECT 1 AS x")
        a.cursor().execute("SET spark.sql.shuffle.partitions=3")
        cur = b.cursor()
        cur.execute("SHOW VIEWS")
        assert "only_in_a" not in {r[1] for r in cur.fetchall()}
        cur.execute("SET spark.sql.shuffle.partitions")
        assert cur.fetchall()[0][1] != "3"
    finally:
        a.close()
        b.close()


def test_imagenet_labels_are_sensible(server):
    labels = _labels(server)
    for name, allowed in EXPECTED.items():
        assert labels[name] in allowed, (name, labels[name])


def test_classify_image_struct_and_filter(server):
    rows = server.query(
        "SELECT path, classify_image(content).label, classify_image(content).probability, "
        "classify_image(content).model FROM demo.photos WHERE classify_image(content).probability > 0.5")
    names = {Path(r[0]).name for r in rows}
    assert "coffee.png" in names
    for _, label, prob, model in rows:
        assert 0.5 < prob <= 1.0 and model == "imagenet:1" and label


def test_explicit_model_versions(server):
    assert _labels(server, "imagenet:1") == _labels(server, "imagenet") == _labels(server)


def test_null_and_garbage_give_null_and_server_keeps_serving(server):
    rows = server.query("SELECT image_label(CAST(NULL AS BINARY)), image_label(X'00112233445566'), "
                        "image_label(X''), classify_image(X'89504E470D0A1A0A0000').label, "
                        "classify_image(CAST(NULL AS BINARY)).probability")
    assert rows == [(None, None, None, None, None)]
    assert server.alive()
    assert server.query("SELECT image_label(content) FROM demo.photos WHERE path LIKE '%coffee%'") \
        == [("espresso",)]
    assert "not decodable" in server.log()


def test_truncated_image_gives_null_or_label(server, photos_dir):
    data = (photos_dir / "rocket.jpg").read_bytes()[:2000].hex()
    rows = server.query(f"SELECT image_label(X'{data}'), image_label(X'{data[:64]}')")
    assert rows[0][1] is None
    assert server.alive()


def test_unknown_model_is_a_clear_error(server):
    from pyhive.exc import OperationalError

    from sqlext.sqlrunner import short_error

    with pytest.raises(OperationalError) as info:
        server.query("SELECT image_label(content, 'no_such_model') FROM demo.photos")
    message = short_error(info.value)
    assert "unknown model 'no_such_model'" in message and "imagenet" in message
    assert server.query("SELECT count(*) FROM demo.photos") == [(7,)]


def test_describe_function_shows_usage_arguments_examples(server):
    text = "\n".join(r[0] for r in server.query("DESCRIBE FUNCTION EXTENDED classify_image"))
    assert "classify_image(content[, model])" in text
    assert "Arguments:" in text and "name:version" in text
    assert "Examples:" in text and "FROM demo.photos" in text
    short = "\n".join(r[0] for r in server.query("DESCRIBE FUNCTION image_label"))
    assert "top-1 label" in short


def test_beeline(server):
    beeline = Path(pyspark.__file__).parent / "bin" / "beeline"
    result = subprocess.run(
        [str(beeline), "-u", server.url, "-n", "tester", "--silent=true", "--outputformat=csv2",
         "-e", "SELECT image_label(content) AS label FROM demo.photos WHERE path LIKE '%coffee%';"],
        capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["label", "espresso"], result.stdout


def test_sqlalchemy_hive_dialect(server):
    import sqlalchemy as sa

    engine = sa.create_engine(f"hive://tester@{server.host}:{server.port}/default")
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT image_label(content) AS label, count(*) AS n FROM demo.photos "
            "GROUP BY image_label(content) ORDER BY n DESC, label")).fetchall()
    assert sum(n for _, n in rows) == 7
    assert ("espresso", 1) in [tuple(r) for r in rows]
    engine.dispose()


def test_unaliased_columns_are_titled_as_written(server):
    conn = server.connect()
    try:
        cur = conn.cursor()
        cur.execute("SELECT p.path, image_label(p.content), image_label(content, 'imagenet:1'), "
                    "classify_image(content).label, count(image_label(content)) OVER () "
                    "FROM demo.photos p WHERE path LIKE '%coffee%'")
        assert [d[0] for d in cur.description] == [
            "path", "image_label(content)", "image_label(content, imagenet:1)", "classify_image(content).label",
            "count(image_label(content)) OVER (ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)"]
        assert [r[1:] for r in cur.fetchall()] == [("espresso", "espresso", "espresso", 1)]
        cur.execute("SELECT image_label(content), count(*) FROM demo.photos GROUP BY image_label(content)")
        assert [d[0] for d in cur.description] == ["image_label(content)", "count(1)"]
        assert sum(n for _, n in cur.fetchall()) == 7
        cur.execute("CREATE TEMPORARY VIEW labels AS SELECT path, image_label(content) FROM demo.photos")
        cur.execute("DESCRIBE labels")
        assert [r[0] for r in cur.fetchall()] == ["path", "image_label(content)"]
        cur.execute("SELECT `image_label(content)` FROM labels WHERE path LIKE '%coffee%'")
        assert cur.fetchall() == [("espresso",)]
    finally:
        conn.close()


def test_null_content_gives_a_null_struct(server):
    rows = server.query("SELECT classify_image(CAST(NULL AS BINARY)) IS NULL, "
                        "classify_image(content) IS NULL FROM demo.photos LIMIT 1")
    assert rows == [(True, False)]


def test_wrong_argument_count_is_an_analysis_error(server):
    from pyhive.exc import OperationalError

    from sqlext.sqlrunner import short_error

    with pytest.raises(OperationalError) as info:
        server.query("SELECT image_label(content, 'imagenet', 3) FROM demo.photos")
    assert "takes 1 or 2 arguments, got 3" in short_error(info.value)


def test_on_error_fail_names_the_reason_and_is_per_session(server):
    from pyhive.exc import OperationalError

    from sqlext.sqlrunner import short_error

    strict, lenient = server.connect(), server.connect()
    try:
        cur = strict.cursor()
        cur.execute("SET sqlext.on_error=fail")
        with pytest.raises(OperationalError) as info:
            cur.execute("SELECT image_label(X'0011223344') ")
        assert "sqlext.on_error=fail" in short_error(info.value)
        assert "not a decodable image" in short_error(info.value)
        cur.execute("SELECT image_label(content) FROM demo.photos WHERE path LIKE '%coffee%'")
        assert cur.fetchall() == [("espresso",)]
        other = lenient.cursor()
        other.execute("SELECT image_label(X'0011223344')")
        assert other.fetchall() == [(None,)]
        with pytest.raises(OperationalError) as info:
            cur.execute("SET sqlext.on_error=maybe")
            cur.execute("SELECT image_label(content) FROM demo.photos")
        assert "must be 'null' or 'fail'" in short_error(info.value)
    finally:
        strict.close()
        lenient.close()


def test_server_jvm_runs_g1_with_large_regions(server):
    """Image rows are megabytes: with G1's default regions each one is a humongous object, which set off
    back-to-back concurrent marking cycles (sqlext.session.JAVA_OPTIONS)."""
    jvm = procs.tree(server.proc.pid).jvm
    flags = subprocess.run(["jcmd", str(jvm), "VM.flags"], capture_output=True, text=True, timeout=60).stdout
    assert "-XX:+UseG1GC" in flags and "-XX:G1HeapRegionSize=33554432" in flags, flags
