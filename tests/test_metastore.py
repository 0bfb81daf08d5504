"""The metastore choice (flag / env / sqlext.conf / Derby) and a PostgreSQL metastore shared live
by a running `sqlext serve` and `sqlext ingest` processes."""
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sqlext import metastore
from sqlext.config import Home

from conftest import BIN, Server, make_home, sqlext_cmd

URL = "postgres://hive%40x:p%3Aw@db.example:6543/meta?sslmode=disable"


# ---- choosing the metastore (no Spark) ------------------------------------------------------------

def test_parse_postgres_url_decodes_user_and_password():
    m = metastore.parse(URL)
    assert (m.kind, m.user, m.password, m.host, m.port, m.database) == \
        ("postgres", "hive@x", "p:w", "db.example", 6543, "meta")
    assert m.jdbc_url == "jdbc:postgresql://db.example:6543/meta?sslmode=disable"
    assert "p:w" not in m.describe() and "p%3Aw" not in m.describe()
    assert metastore.parse("postgresql://u@h/d").port == 5432


@pytest.mark.parametrize("bad", ["mysql://u:p@h/d", "postgres://h:5432/d", "postgres://u:p@h:5432/",
                                 "postgres://u:p@h:notaport/d", "jdbc:postgresql://h/d"])
def test_bad_urls_are_clear_errors(bad):
    with pytest.raises(metastore.MetastoreError) as info:
        metastore.parse(bad, "--metastore")
    assert "--metastore" in str(info.value) and "postgres://USER" in str(info.value)


def test_precedence_env_then_conf_file_then_derby(tmp_path, monkeypatch):
    home = Home(tmp_path)
    monkeypatch.delenv(metastore.ENV, raising=False)
    assert metastore.resolve(home).kind == "derby"
    (tmp_path / "sqlext.conf").write_text("[metastore]\nurl = postgres://a:b@confhost:1/c\n")
    assert metastore.resolve(home).host == "confhost"
    assert str(tmp_path / "sqlext.conf") in metastore.resolve(home).source
    monkeypatch.setenv(metastore.ENV, "postgres://a:b@envhost/c")
    assert metastore.resolve(home).host == "envhost"
    monkeypatch.setenv(metastore.ENV, "derby")        # the env var can switch a conf file back
    assert metastore.resolve(home).kind == "derby"


def test_spark_settings_keep_other_classpath_entries(tmp_path, monkeypatch):
    jar = tmp_path / "pg.jar"
    jar.write_bytes(b"")
    monkeypatch.setenv(metastore.JDBC_JAR_ENV, str(jar))
    monkeypatch.setenv(metastore.ENV, URL)
    settings = {"spark.driver.extraClassPath": "/x/other.jar"}
    chosen = metastore.apply(settings, Home(tmp_path))
    assert chosen.kind == "postgres"
    assert settings["spark.driver.extraClassPath"].split(":") == ["/x/other.jar", str(jar)]
    assert settings["spark.hadoop.javax.jdo.option.ConnectionURL"].startswith("jdbc:postgresql://db.example:6543/")
    assert settings["spark.hadoop.javax.jdo.option.ConnectionPassword"] == "p:w"
    assert settings["spark.hadoop.datanucleus.autoCreateTables"] == "true"
    monkeypatch.setenv(metastore.ENV, "derby")
    derby = {}
    metastore.apply(derby, Home(tmp_path))
    assert derby == {"spark.hadoop.javax.jdo.option.ConnectionURL":
                     f"jdbc:derby:;databaseName={tmp_path / 'metastore_db'};create=true"}


def test_missing_jdbc_jar_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(metastore.JDBC_JAR_ENV, str(tmp_path / "nope.jar"))
    monkeypatch.setenv(metastore.ENV, URL)
    with pytest.raises(metastore.MetastoreError, match="libpostgresql-jdbc-java"):
        metastore.apply({}, Home(tmp_path))


def test_cli_rejects_a_bad_url_before_starting_spark(tmp_path):
    started = time.monotonic()
    result = sqlext_cmd(tmp_path, "--metastore", "postgres://nohost", "ingest", tmp_path, "--table", "t",
                        check=False)
    assert result.returncode != 0 and "postgres://USER" in result.stderr
    assert time.monotonic() - started < 30


# ---- one PostgreSQL metastore, two live processes --------------------------------------------------

@pytest.fixture(scope="module")
def shared(tmp_path_factory, imagenet_bundle_dir, postgres):
    """A home whose sqlext.conf names a new, empty PostgreSQL database, and a server using it."""
    url = postgres.create_database("sqlext_shared")
    home = make_home(tmp_path_factory, imagenet_bundle_dir, "pg_home")
    (home.root / "sqlext.conf").write_text(f"# written by the test\n[metastore]\nurl = {url}\n")
    server = Server(home.root).start()
    yield home, url, server
    server.stop()


def test_schema_is_created_in_an_empty_database(shared, postgres):
    home, _, server = shared
    assert ("default",) in server.query("SHOW DATABASES")      # the first query opens the metastore
    tables = {r[0] for r in postgres.psql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'", "sqlext_shared")}
    assert {"DBS", "TBLS", "SDS", "COLUMNS_V2", "VERSION"} <= tables
    assert postgres.psql('SELECT "NAME" FROM "DBS"', "sqlext_shared") == [["default"]]
    assert not (home.root / "metastore_db").exists()          # no Derby beside it


def test_ingest_in_another_process_while_the_server_answers(shared, postgres, photos_dir, tmp_path):
    home, url, server = shared
    conn = server.connect()                                     # opened before the table exists
    answers, stop = [], threading.Event()

    def keep_asking():  # the server keeps answering while ingest writes the metastore
        while not stop.is_set() and len(answers) < 200:
            answers.append(server.query("SELECT 1")[0][0])
            time.sleep(0.5)

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        # the --metastore flag (global, before the command) selects the same database
        result = sqlext_cmd(home.root, "--metastore", url, "ingest", photos_dir, "--table", "shared.photos")
    finally:
        stop.set()
        asker.join()
    assert "7 image(s) written" in result.stdout
    assert server.alive() and len(answers) >= 3 and set(answers) == {1}
    cur = conn.cursor()
    cur.execute("SELECT image_label(content) FROM shared.photos WHERE path LIKE '%coffee.png'")
    assert cur.fetchall() == [("espresso",)]
    conn.close()
    assert postgres.psql('SELECT "TBL_NAME" FROM "TBLS"', "sqlext_shared") == [["photos"]]


def test_external_partitioned_table_from_another_process(shared, photos_dir, tmp_path):
    home, url, server = shared
    tree = tmp_path / "tree"
    for label, names in {"cats": ["chelsea_cat.png"], "drinks": ["coffee.png"]}.items():
        (tree / label).mkdir(parents=True)
        for name in names:
            shutil.copy(photos_dir / name, tree / label / name)
    # the environment variable selects the metastore this time
    sqlext_cmd(home.root, "ingest", tree, "--table", "shared.tree", "--external", "--partition-by", "label",
               env={"SQLEXT_METASTORE": url})
    conn = server.connect()
    try:
        cur = conn.cursor()
        cur.execute("SHOW PARTITIONS shared.tree")
        assert sorted(r[0] for r in cur.fetchall()) == ["label=cats", "label=drinks"]
        cur.execute("SELECT label, image_label(content) FROM shared.tree ORDER BY label")
        rows = cur.fetchall()
        assert [r[0] for r in rows] == ["cats", "drinks"] and rows[1][1] == "espresso"
        shutil.copy(photos_dir / "rocket.jpg", tree / "drinks" / "rocket.jpg")
        cur.execute("REFRESH TABLE shared.tree")
        cur.execute("SELECT label, count(*) FROM shared.tree GROUP BY label ORDER BY label")
        assert cur.fetchall() == [("cats", 1), ("drinks", 2)]
    finally:
        conn.close()
