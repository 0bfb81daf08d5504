"""`sqlext ingest`: managed (idempotent, --append), external (binaryFile, partitions, REFRESH),
the progress bar, and the DDL files in sql/ddl.

One Derby home for the module: every `sqlext ingest` runs first (one process at a time), then one
`sqlext serve` on the same home checks the tables and sees files added afterwards.
"""
import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from conftest import BIN, ROOT, Server, make_home, sqlext_cmd


def _copy(src: Path, *targets: Path) -> None:
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, target)


def run_in_terminal(home, *args, timeout=600) -> tuple:
    """Run `sqlext ARGS` with a pseudo-terminal as stdout/stderr; return (returncode, what it showed)."""
    env = dict(os.environ, SQLEXT_HOME=str(home), SPARK_LOCAL_IP="127.0.0.1")
    env.pop("CI", None)                               # CI silences bars; this test wants one
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))   # 120 columns wide
    proc = subprocess.Popen([str(BIN / "sqlext"), *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 1)[0]:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:                           # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
    return proc.wait(60), b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def images(tmp_path_factory, photos_dir) -> Path:
    """Folders in the layouts users have (see the fixture body)."""
    root = tmp_path_factory.mktemp("images")
    p = photos_dir
    shutil.copytree(p, root / "photos")                                   # the 7 sample photos
    _copy(p / "coffee.png", root / "flat" / "coffee.png")                 # flat + a sub-folder + a non-image
    _copy(p / "rocket.jpg", root / "flat" / "rocket.jpg")
    _copy(p / "flower.jpg", root / "flat" / "sub" / "flower.jpg")
    (root / "flat" / "notes.txt").write_text("not an image")
    _copy(p / "chelsea_cat.png", root / "labelled" / "cats" / "chelsea_cat.png")   # ants/x.jpg layout
    _copy(p / "coffee.png", root / "labelled" / "drinks" / "coffee.png")
    _copy(p / "china.jpg", root / "labelled" / "temples" / "china.jpg")           # vanishes before re-run
    _copy(p / "rocket.jpg", root / "daily" / "ds=2024-01-01" / "rocket.jpg")      # key=value layout
    _copy(p / "china.jpg", root / "daily" / "ds=2024-01-02" / "china.jpg")
    _copy(p / "flower.jpg", root / "daily" / "ds=2024-01-02" / "flower.jpg")
    return root


@pytest.fixture(scope="module")
def home(tmp_path_factory, imagenet_bundle_dir):
    return make_home(tmp_path_factory, imagenet_bundle_dir, "ingest_home")


@pytest.fixture(scope="module")
def runs(home, images):
    """Every ingest of the module, in order; {step: (returncode or stdout, output)}."""
    out = {}
    photos = images / "photos"
    out["tty"] = run_in_terminal(home.root, "ingest", photos, "--table", "demo.photos")
    out["again"] = sqlext_cmd(home.root, "ingest", photos, "--table", "demo.photos")
    _copy(photos / "coffee.png", photos / "more" / "coffee_again.png")
    out["append"] = sqlext_cmd(home.root, "ingest", photos, "--table", "demo.photos", "--append")
    out["layout"] = sqlext_cmd(home.root, "ingest", photos, "--table", "demo.layout",
                               env={"SQLEXT_INGEST_ROW_GROUP_MB": "0.5"})
    out["flat"] = sqlext_cmd(home.root, "ingest", images / "flat", "--table", "demo.flat", "--external")
    out["flat_recursive"] = sqlext_cmd(home.root, "ingest", images / "flat", "--table", "demo.flat",
                                       "--external", "--recursive")
    out["labelled"] = sqlext_cmd(home.root, "ingest", images / "labelled", "--table", "demo.labelled",
                                 "--external", "--partition-by", "label")
    shutil.rmtree(images / "labelled" / "temples")
    _copy(images / "photos" / "rocket.jpg", images / "labelled" / "rockets" / "rocket.jpg")
    out["labelled_again"] = sqlext_cmd(home.root, "ingest", images / "labelled", "--table", "demo.labelled",
                                       "--external", "--partition-by", "label")
    out["daily"] = sqlext_cmd(home.root, "ingest", images / "daily", "--table", "demo.daily",
                              "--external", "--partition-by", "ds")
    return out


@pytest.fixture(scope="module")
def server(runs, home):
    srv = Server(home.root).start()
    yield srv
    srv.stop()


def _one(cursor, sql) -> list:
    """Run one statement; its rows ([] for a command: see sqlrunner.fetch)."""
    from sqlext.sqlrunner import fetch

    cursor.execute(sql)
    return fetch(cursor)[1]


# ---- managed ------------------------------------------------------------------------------------

def test_managed_ingest_shows_a_progress_bar_on_a_terminal(runs):
    code, shown = runs["tty"]
    assert code == 0, shown[-3000:]
    assert "demo.photos: 7 image(s) written, 7 row(s) in the table" in shown
    bars = re.findall(r"ingest demo\.photos: +(\d+)%\|.*?\| (\d+)/(\d+) \[", shown)
    assert bars and bars[-1][0] == "100" and bars[-1][1] == bars[-1][2], shown[-2000:]


def test_rerun_is_idempotent_and_quiet_without_a_terminal(runs):
    again = runs["again"]
    assert "demo.photos: 7 image(s) written, 7 row(s) in the table" in again.stdout
    assert "%|" not in again.stderr and "%|" not in again.stdout


def test_append_adds_only_new_files(runs, server):
    assert "1 image(s) written, 8 row(s)" in runs["append"].stdout
    assert server.query("SELECT count(*), count(DISTINCT path) FROM demo.photos") == [(8, 8)]
    assert server.query("SELECT image_label(content) FROM demo.photos WHERE path LIKE '%/more/coffee_again.png'") \
        == [("espresso",)]


def test_option_mistakes_fail_before_spark_starts(home, images):
    cases = [
        (["--external", "--append"], "REFRESH TABLE"),
        (["--external", "--label-from-dir"], "--partition-by label"),
        (["--external", "--partition-by", "label", "--glob", "*.png"], "cannot be combined"),
        (["--partition-by", "label"], "needs --external"),
        (["--external", "--partition-by", "content"], "new column name"),
    ]
    for extra, message in cases:
        result = sqlext_cmd(home.root, "ingest", images / "labelled", "--table", "demo.x", *extra, check=False)
        assert result.returncode != 0 and message in result.stderr, (extra, result.stderr[-500:])
    result = sqlext_cmd(home.root, "ingest", images / "nope", "--table", "demo.x", check=False)
    assert result.returncode != 0 and "no such folder" in result.stderr


def test_managed_tables_are_sorted_by_path_in_small_row_groups(runs, home):
    """One file (the table is far below 1 GiB), rows in path order, row groups of about the set size:
    each row group covers its own path range, so a lookup by path reads one of them.  Not compressed:
    image formats are already."""
    import pyarrow.parquet as pq

    files = sorted((home.root / "warehouse" / "demo.db" / "layout").glob("*.parquet"))
    assert len(files) == 1, files
    meta = pq.ParquetFile(files[0]).metadata
    assert meta.num_row_groups >= 3, meta
    paths = pq.read_table(files[0], columns=["path"]).column("path").to_pylist()
    assert paths == sorted(paths) and len(paths) == 8
    ranges = [(meta.row_group(i).column(0).statistics.min, meta.row_group(i).column(0).statistics.max)
              for i in range(meta.num_row_groups)]
    assert all(ranges[i][1] < ranges[i + 1][0] for i in range(len(ranges) - 1)), ranges
    codecs = {meta.row_group(g).column(c).compression for g in range(meta.num_row_groups)
              for c in range(meta.num_columns)}
    assert codecs == {"UNCOMPRESSED"}, codecs


# ---- external -----------------------------------------------------------------------------------

def test_external_flat_folder_glob_and_recursive(runs, server, images):
    assert "demo.flat: external table over" in runs["flat"].stdout
    assert ", 2 file(s), no bytes copied" in runs["flat"].stdout            # top level, images only
    assert ", 3 file(s), no bytes copied" in runs["flat_recursive"].stdout  # + sub/flower.jpg
    cur = server.connect().cursor()
    names = sorted(Path(p).name for (p,) in _one(cur, "SELECT path FROM demo.flat"))
    assert names == ["coffee.png", "flower.jpg", "rocket.jpg"]
    desc = {r[0]: r[1] for r in _one(cur, "DESCRIBE TABLE EXTENDED demo.flat")}
    assert desc["Type"] == "EXTERNAL" and desc["Provider"] == "binaryFile"
    row = _one(cur, "SELECT length, length(content), image_label(content) FROM demo.flat WHERE path LIKE '%coffee.png'")
    assert row == [((images / "flat" / "coffee.png").stat().st_size,) * 2 + ("espresso",)]
    _copy(images / "photos" / "astronaut.png", images / "flat" / "sub" / "deeper" / "astronaut.png")
    _one(cur, "REFRESH TABLE demo.flat")
    assert _one(cur, "SELECT count(*) FROM demo.flat") == [(4,)]
    assert not list((Path(server.home) / "warehouse").rglob("*flower*"))   # nothing was copied


def test_external_partitioned_by_plain_folder_names(runs, server, images):
    assert "3 partition(s) (+3 -0), 3 file(s)" in runs["labelled"].stdout
    assert "3 partition(s) (+1 -1), 3 file(s)" in runs["labelled_again"].stdout   # rockets in, temples out
    cur = server.connect().cursor()
    assert [r[0] for r in _one(cur, "SHOW PARTITIONS demo.labelled")] == \
        ["label=cats", "label=drinks", "label=rockets"]
    rows = _one(cur, "SELECT label, image_label(content) FROM demo.labelled WHERE label = 'drinks'")
    assert rows == [("drinks", "espresso")]
    _copy(images / "photos" / "coffee.png", images / "labelled" / "cats" / "not_a_cat.png")
    _one(cur, "REFRESH TABLE demo.labelled")
    assert _one(cur, "SELECT label, count(*) FROM demo.labelled GROUP BY label ORDER BY label") == \
        [("cats", 2), ("drinks", 1), ("rockets", 1)]
    assert sorted(p.name for p in (images / "labelled").iterdir()) == ["cats", "drinks", "rockets"]


def test_external_partitioned_key_value_layout_and_msck(runs, server, images):
    assert "2 partition(s) (+2 -0), 3 file(s)" in runs["daily"].stdout
    cur = server.connect().cursor()
    assert _one(cur, "SELECT ds, count(*) FROM demo.daily GROUP BY ds ORDER BY ds") == \
        [("2024-01-01", 1), ("2024-01-02", 2)]
    _copy(images / "photos" / "coffee.png", images / "daily" / "ds=2024-01-03" / "coffee.png")
    _copy(images / "photos" / "coffee.png", images / "daily" / "ds=2024-01-01" / "coffee.png")
    _one(cur, "MSCK REPAIR TABLE demo.daily")           # the new day (key=value folders only)
    _one(cur, "REFRESH TABLE demo.daily")               # the new file in a known day
    assert _one(cur, "SELECT ds, count(*) FROM demo.daily GROUP BY ds ORDER BY ds") == \
        [("2024-01-01", 2), ("2024-01-02", 2), ("2024-01-03", 1)]


# ---- sql/ddl ------------------------------------------------------------------------------------

def test_ddl_files_create_working_tables(server, images, tmp_path):
    """Each sql/ddl file runs as written, with /data/images pointing at the test folders."""
    ddl_root = tmp_path / "data"
    _copy(images / "photos" / "rocket.jpg", ddl_root / "daily" / "ds=2024-02-01" / "rocket.jpg")
    _copy(images / "photos" / "chelsea_cat.png", ddl_root / "labelled" / "cats" / "chelsea_cat.png")
    _copy(images / "photos" / "coffee.png", ddl_root / "labelled" / "drinks" / "coffee.png")
    folders = {"/data/images/photos": images / "photos", "/data/images/labelled": ddl_root / "labelled",
               "/data/images/daily": ddl_root / "daily"}
    ddl = sorted((ROOT / "sql" / "ddl").glob("*.sql"))
    assert {p.name for p in ddl} >= {"photos.sql", "photos_external.sql", "photos_by_label.sql",
                                     "photos_by_day.sql"}
    for path in ddl:
        text = path.read_text()
        for placeholder, folder in folders.items():
            text = text.replace(placeholder, str(folder))
        assert "/data/images" not in text, path.name
        script = tmp_path / path.name
        script.write_text(text)
        sqlext_cmd(server.home, "sql", script, "--port", server.port)
    counts = dict(server.query(
        "SELECT 'external', count(*) FROM demo.photos_external UNION ALL "
        "SELECT 'by_label', count(*) FROM demo.photos_by_label UNION ALL "
        "SELECT 'by_day', count(*) FROM demo.photos_by_day"))
    assert counts == {"external": 8, "by_label": 2, "by_day": 1}
    assert server.query("SELECT image_label(content) FROM demo.photos_by_label WHERE label = 'drinks'") == \
        [("espresso",)]
