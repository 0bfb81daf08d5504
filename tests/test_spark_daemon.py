"""sqlext.spark_daemon: Spark's Python workers run without Spark's archives on sys.path."""
import os
import sys
import sysconfig

import pyspark

from sqlext.config import Home
from sqlext.spark_daemon import trimmed

LIB = os.path.join(os.path.dirname(pyspark.__file__), "python", "lib")
SPARK_ARCHIVES = [os.path.join(LIB, "pyspark.zip"), os.path.join(LIB, "py4j-0.10.9.7-src.zip"),
                  os.path.join(os.path.dirname(pyspark.__file__), "jars", "spark-core_2.12-3.5.8.jar")]


def test_spark_archives_dropped_when_site_packages_has_pyspark_and_py4j(tmp_path):
    mine = str(tmp_path / "udfs.zip")
    site = sysconfig.get_paths()["purelib"]
    assert trimmed(SPARK_ARCHIVES + [mine, site]) == [mine, site]


def test_zips_kept_where_they_are_the_only_pyspark(tmp_path):
    assert trimmed(SPARK_ARCHIVES + [str(tmp_path)]) == SPARK_ARCHIVES[:2] + [str(tmp_path)]


def test_a_spark_python_worker_has_no_spark_archive_on_its_path(tmp_path):
    from sqlext import session

    spark = session.start(Home(tmp_path / "home"), "daemon-test", "local[1]",
                          {"spark.sql.catalogImplementation": "in-memory"})
    try:
        worker_path = spark.sparkContext.parallelize([0], 1).map(lambda _: list(sys.path)).collect()[0]
        modules = spark.sparkContext.parallelize([0], 1).map(
            lambda _: (sys.modules["pyspark"].__file__, sys.modules["pyspark.daemon"].__name__)).collect()[0]
    finally:
        spark.stop()
    spark_archives = [p for p in worker_path if p.endswith(".jar") or os.path.basename(p) == "pyspark.zip"
                      or os.path.basename(p).startswith("py4j-")]
    assert not spark_archives, worker_path
    assert "pyspark.zip" not in modules[0], modules
