"""The driver JVM's class archive: written once by a command, then mapped by every later JVM."""
import os
import subprocess
import sys

from conftest import sqlext_cmd

LOADED_FROM_ARCHIVE = "source: shared objects file (top)"  # -Xlog:class+load, the dynamic archive's layer

START_AND_QUERY = """
import sys
from pathlib import Path
from sqlext import session
from sqlext.config import Home
spark = session.builder(Home(Path(sys.argv[1])), "archive-test", "local[1]",
                        java_options=f"-Xlog:class+load=info:file={sys.argv[2]}").getOrCreate()
assert spark.sql("SELECT count(*) FROM range(10)").collect()[0][0] == 10
spark.stop()
"""


def _start_and_query(home, class_log, cache, **env) -> None:
    subprocess.run([sys.executable, "-c", START_AND_QUERY, str(home), str(class_log)], check=True, timeout=300,
                   env=dict(os.environ, SQLEXT_CACHE_DIR=str(cache), SPARK_LOCAL_IP="127.0.0.1", **env))


def _spark_classes_from_archive(class_log) -> int:
    return sum(1 for line in class_log.read_text().splitlines()
               if LOADED_FROM_ARCHIVE in line and " org.apache.spark." in line)


def test_first_command_writes_the_archive_and_later_jvms_map_it(tmp_path, photos_dir):
    cache = tmp_path / "cache"
    result = sqlext_cmd(tmp_path / "home", "ingest", photos_dir, "--table", "shop.photos",
                        env={"SQLEXT_CACHE_DIR": str(cache)})
    archives = sorted(cache.glob("classes-*.jsa"))
    assert len(archives) == 1 and archives[0].stat().st_size > 10_000_000, sorted(cache.iterdir())
    assert not list(cache.glob("*.unfinished"))
    assert "class archive" in result.stderr

    mapped = tmp_path / "mapped.log"
    _start_and_query(tmp_path / "home", mapped, cache)
    assert _spark_classes_from_archive(mapped) > 1000  # Spark's classes came from the archive, not its jars

    unmapped = tmp_path / "unmapped.log"
    _start_and_query(tmp_path / "home", unmapped, cache, SQLEXT_CLASS_ARCHIVE="off")
    assert _spark_classes_from_archive(unmapped) == 0
    assert sorted(cache.glob("classes-*.jsa")) == archives  # a library session never writes one


def test_a_changed_class_path_gets_its_own_archive(tmp_path, monkeypatch):
    from sqlext import class_archive, jvm

    monkeypatch.setenv("SQLEXT_CACHE_DIR", str(tmp_path))
    jar = jvm.jar_path()
    first = class_archive.archive_path(jar, jvm.spark_jars())
    assert class_archive.archive_path(jar, jvm.spark_jars()) == first
    monkeypatch.setenv("HADOOP_CONF_DIR", str(tmp_path))
    assert class_archive.archive_path(jar, jvm.spark_jars()) != first
    monkeypatch.delenv("HADOOP_CONF_DIR")
    os.utime(jar, ns=(0, 0))  # a rebuilt jar
    assert class_archive.archive_path(jar, jvm.spark_jars()) != first
