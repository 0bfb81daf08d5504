"""HBase tables as `hbase.NAME` views: a real `sqlext serve` + PyHive against the Thrift1 stand-in.

The HBase side is tests/hbase_standin.py (the real Thrift1 protocol, in-memory storage), not a
cluster: what a region server does (storage, splits, filters) is not covered here.
"""
import subprocess
import time

import happybase
import pytest
from pyhive.exc import OperationalError

from conftest import BIN, Server, free_port, make_home
from hbase_standin import HBaseStandin
from sqlext import hbase
from sqlext.samples import PHOTOS

CAPTIONS = {name.rsplit(".", 1)[0]: caption for _, _, name, caption in PHOTOS}
SPLITS = [b"d", b"h"]  # 3 regions: astronaut..coffee | flower, grace_hopper | rocket
EXPECTED = {"coffee": {"espresso"}, "chelsea_cat": {"tiger cat", "tabby, tabby cat", "Egyptian cat"},
            "flower": {"daisy"}, "rocket": {"missile", "projectile, missile", "space shuttle"}}


@pytest.fixture(scope="module")
def standin(photos_dir):
    gateway = HBaseStandin().start()
    gateway.create_table("photos", [b"cf", b"meta"], splits=SPLITS)
    table = happybase.Connection(gateway.host, gateway.port).table("photos")
    with table.batch() as batch:
        for path in sorted(photos_dir.iterdir()):
            batch.put(path.stem.encode(), {b"cf:image": path.read_bytes(), b"meta:file": path.name.encode(),
                                           b"meta:caption": CAPTIONS[path.stem].encode()})
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def table(standin):
    return happybase.Connection(standin.host, standin.port).table("photos")


@pytest.fixture(scope="module")
def gone_port():
    return free_port()  # nothing listens there


@pytest.fixture(scope="module")
def hbase_server(tmp_path_factory, imagenet_bundle_dir, standin, gone_port):
    home = make_home(tmp_path_factory, imagenet_bundle_dir, "hbase_home")
    srv = Server(home.root, extra_args=[
        "--hbase-table", f"photos={standin.address}/photos:cf:image",
        "--hbase-table", f"gone=127.0.0.1:{gone_port}/photos",
        "--hbase-table", f"nosuch={standin.address}/nosuch:cf:image?batch=2&timeout=5",
    ]).start()
    yield srv
    srv.stop()


def _error(exc_info) -> str:
    """The message the server sent (what a JDBC client shows), not its Python repr."""
    return exc_info.value.args[0].status.errorMessage


def _labels(cursor) -> dict:
    cursor.execute("SELECT key, image_label(image) FROM hbase.photos")
    return dict(cursor.fetchall())


def test_labels_from_two_connections_and_live_rows(hbase_server, table, photos_dir):
    first, second = hbase_server.connect(), hbase_server.connect()
    try:
        for conn in (first, second):
            labels = _labels(conn.cursor())
            assert set(CAPTIONS) <= set(labels)
            for key, allowed in EXPECTED.items():
                assert labels[key] in allowed, (key, labels[key])
        # put after the server started; the already open sessions see it in their next query
        table.put(b"live_coffee", {b"cf:image": (photos_dir / "coffee.png").read_bytes(),
                                   b"meta:caption": b"put while serving"})
        for conn in (first, second):
            assert _labels(conn.cursor())["live_coffee"] == "espresso"
    finally:
        first.close()
        second.close()


def test_where_on_a_string_column(hbase_server):
    rows = hbase_server.query("SELECT key, file, cells['meta:caption'] FROM hbase.photos "
                              "WHERE caption = 'a cup of espresso'")
    assert rows == [("coffee", "coffee.png", "a cup of espresso")]


def test_types(hbase_server, photos_dir):
    described = {r[0]: r[1] for r in hbase_server.query("DESCRIBE hbase.photos")}
    assert described.items() >= {"key": "string", "image": "binary", "caption": "string", "file": "string",
                                 "cells": "map<string,string>"}.items()
    rows = hbase_server.query("SELECT length(image), cells['cf:image'] IS NULL FROM hbase.photos WHERE key = 'coffee'")
    assert rows == [(len((photos_dir / "coffee.png").read_bytes()), True)]


def test_scan_is_split_by_region_across_spark_partitions(hbase_server, standin):
    before = len(standin.scans)
    rows = hbase_server.query("SELECT spark_partition_id(), min(key), max(key), count(*) FROM hbase.photos "
                              "WHERE key <> 'live_coffee' GROUP BY 1 ORDER BY 2")
    assert [(lo, hi, n) for _, lo, hi, n in rows] == [
        ("astronaut", "coffee", 4), ("flower", "grace_hopper", 2), ("rocket", "rocket", 1)]
    assert len({r[0] for r in rows}) == 3
    ranges = {(start, stop) for name, start, stop in standin.scans[before:] if name == b"photos"}
    assert {(b"", b"d"), (b"d", b"h"), (b"h", b"")} <= ranges


def test_new_regions_and_columns_are_picked_up(hbase_server, standin, table):
    # Split first: a refresh between the two steps then publishes the split alone, and the one
    # that shows `camera` sees the split too (the other order let a query see camera, old ranges).
    standin.split("photos", b"t")
    table.put(b"zz_new", {b"cf:image": b"not an image", b"meta:camera": b"pinhole"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        columns = {r[0] for r in hbase_server.query("DESCRIBE hbase.photos")}
        if "camera" in columns:
            break
        time.sleep(1)
    assert "camera" in columns
    rows = hbase_server.query("SELECT key, camera, image_label(image), spark_partition_id() FROM hbase.photos "
                              "WHERE key IN ('rocket', 'zz_new') ORDER BY key")
    assert [r[:3] for r in rows] == [("rocket", None, rows[0][2]), ("zz_new", "pinhole", None)]
    assert rows[0][3] != rows[1][3]  # 'rocket' < 't' <= 'zz_new': now two ranges


def test_unreachable_gateway_is_a_clear_error_and_the_server_keeps_serving(hbase_server, gone_port):
    with pytest.raises(OperationalError) as err:
        hbase_server.query("SELECT key, image_label(image) FROM hbase.gone")
    assert f"hbase.gone: cannot reach the HBase Thrift gateway at 127.0.0.1:{gone_port}" in _error(err)
    with pytest.raises(OperationalError) as err:
        hbase_server.query("SELECT count(*) FROM hbase.nosuch")
    assert "hbase.nosuch" in _error(err) and "TableNotFoundException: nosuch" in _error(err)
    assert hbase_server.query("SELECT 1") == [(1,)]
    assert hbase_server.query("SELECT count(*) FROM hbase.photos WHERE key = 'coffee'") == [(1,)]
    assert hbase_server.alive()


def test_scan_function_refuses_unmapped_names(hbase_server):
    with pytest.raises(OperationalError) as err:
        hbase_server.query("SELECT * FROM hbase_scan(TABLE(SELECT id FROM range(1)), 'other', '')")
    assert "no HBase table 'other' is mapped" in _error(err)


def test_restart_reuses_its_views_and_unmapped_ones_fail_clearly(hbase_server, standin):
    """Last server test: restarts on the same metastore with only `photos` mapped."""
    hbase_server.stop()
    again = Server(hbase_server.home, extra_args=["--hbase-table", f"photos={standin.address}/photos"]).start()
    try:
        assert {r[1] for r in again.query("SHOW TABLES IN hbase")} == {"photos", "gone", "nosuch"}
        assert again.query("SELECT image_label(image) FROM hbase.photos WHERE key = 'coffee'") == [("espresso",)]
        with pytest.raises(OperationalError) as err:
            again.query("SELECT * FROM hbase.gone")
        assert "no HBase table 'gone' is mapped; the server maps photos" in _error(err)
    finally:
        again.stop()


# ---- the mapping syntax (no server) ---------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("photos=127.0.0.1:9090/photos:cf:image",
     dict(name="photos", host="127.0.0.1", port=9090, table="photos", family="cf", qualifier="image")),
    ("Pics=gw:9090/ns:pics", dict(name="pics", table="ns:pics", family="cf", qualifier="image")),
    ("p=[::1]:9090/ns:t:d:jpeg?transport=framed&protocol=compact&batch=4&timeout=2.5",
     dict(host="::1", table="ns:t", family="d", qualifier="jpeg", transport="framed", protocol="compact",
          batch=4, timeout=2.5)),
])
def test_parse_mapping(text, expected):
    m = hbase.parse_mapping(text)
    assert {k: getattr(m, k) for k in expected} == expected
    assert hbase.parse_mapping(m.spec) == m


@pytest.mark.parametrize("text, why", [
    ("photos", "NAME must be"), ("1x=h:1/t", "NAME must be"), ("p=h/t", "HOST:PORT/"),
    ("p=h:70000/t", "out of range"), ("p=h:1/", "TABLE"), ("p=h:1/a:b:c:d:e", "TABLE"),
    ("p=h:1/t?batch=0", "bad option"), ("p=h:1/t?transport=http", "bad option"), ("p=h:1/t?x", "cannot read options"),
])
def test_parse_mapping_refuses(text, why):
    with pytest.raises(hbase.MappingError, match=why):
        hbase.parse_mapping(text)


def test_duplicate_names_and_cli_errors():
    with pytest.raises(hbase.MappingError, match="more than once"):
        hbase.check_unique(["p=h:1/a", "P=h:2/b"])
    result = subprocess.run([str(BIN / "sqlext"), "serve", "--hbase-table", "p=h/t"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "HOST:PORT/ is missing" in result.stderr


def test_column_names():
    assert hbase.name_columns(["cf:key", "meta:Camera Model", "meta:x", "other:x", "z:x"]) == (
        ("cf_key", "cf:key"), ("camera_model", "meta:Camera Model"), ("meta_x", "meta:x"),
        ("other_x", "other:x"), ("z_x", "z:x"))
