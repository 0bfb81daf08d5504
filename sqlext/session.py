"""Build the SparkSession every sqlext command uses: Hive support, state under $SQLEXT_HOME."""
import os
import sys
from pathlib import Path

from . import class_archive, jvm, metastore, prediction_cache
from .config import Home

LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")
# Rows of images are megabytes: with G1's default 1 MB regions (2 GB heap) every 12 MP JPEG and every
# Parquet column chunk is a "humongous" object, and once the heap holds a few bundles' broadcast pieces
# each of them started a concurrent marking cycle: ~4 ms of JVM CPU per image (BENCHMARKS.md).
# 32 MB regions (G1's largest) make them ordinary young objects.
JAVA_OPTIONS = os.environ.get("SQLEXT_JAVA_OPTIONS", "-XX:G1HeapRegionSize=32m")


def builder(home: Home, app_name: str, master: str = None, conf: dict = None, java_options: str = "",
            archive: str = "map"):
    """``java_options`` are added to the driver JVM's own and to JAVA_OPTIONS (``conf`` replaces settings
    whole).

    ``archive``: the machine's class archive (sqlext.class_archive): "map" it if there is one, "write" one
    too when there is none (the JVM writes it as it exits: stop the session with ``stop()``), or "off"."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    home.ensure()
    jar = str(jvm.jar_path())
    java_options = f"{class_archive.java_options(jar, jvm.spark_jars(), archive)} {JAVA_OPTIONS} {java_options}"
    settings = {
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": str(home.warehouse),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={home.logs} "
                                         f"-Dlog4j2.configurationFile={LOG4J_CONFIG} {java_options.strip()}".strip(),
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": os.environ.get("SQLEXT_SPARK_UI", "false"),
        "spark.ui.showConsoleProgress": "false",
        # image rows are big (a 12 MP JPEG is ~3 MB): 16 rows per Arrow batch bound a Python worker's batch
        # to ~50 MB and match predict.ENGINE_BATCH; 64 put a Lite0 worker over 600 MB peak, for no more
        # throughput (BENCHMARKS.md)
        "spark.sql.execution.arrow.maxRecordsPerBatch": os.environ.get("SQLEXT_ARROW_BATCH", "16"),
        # Parquet reads whole column chunks: with Spark's default 1g heap, count(image_label(content)) over
        # a table of 12 MP photos killed the driver (OutOfMemoryError) and with it the Thrift server
        "spark.driver.memory": os.environ.get("SQLEXT_DRIVER_MEMORY", "2g"),
        "spark.sql.shuffle.partitions": os.environ.get("SQLEXT_SHUFFLE_PARTITIONS", "8"),
        "spark.python.worker.reuse": "true",
        # ~200 ms less CPU per task (see there); SQLEXT_PYTHON_DAEMON=pyspark.daemon restores Spark's own
        "spark.python.daemon.module": os.environ.get("SQLEXT_PYTHON_DAEMON", "sqlext.spark_daemon"),
        "spark.driver.extraClassPath": jar,
        "spark.jars": jar,  # executors on a cluster run the JVM prediction cache's UDFs
        "spark.sqlext.predictionCache.entries": str(prediction_cache.entries_setting()),
    }
    metastore.apply(settings, home)  # Derby under $SQLEXT_HOME, or a shared PostgreSQL one
    settings.update(conf or {})
    b = SparkSession.builder.appName(app_name).master(master or os.environ.get("SQLEXT_MASTER", "local[*]"))
    for key, value in settings.items():
        b = b.config(key, value)
    return b.enableHiveSupport()


def start(home: Home, app_name: str, master: str = None, conf: dict = None, archive: str = "map"):
    spark = builder(home, app_name, master, conf, archive=archive).getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("SQLEXT_LOG_LEVEL", "WARN"))
    return spark


def stop(spark) -> None:
    """Stop ``spark``; a driver JVM that writes the class archive then exits (so no new session can start
    in this process) and its archive is kept."""
    process = getattr(spark.sparkContext._gateway, "proc", None)
    spark.stop()
    class_archive.finish(process)


def with_task_retries(master: str = None) -> str:
    """The master URL with task retries for local mode: ``local[N]`` -> ``local[N,F]``.

    Local mode tries each task once (it ignores spark.task.maxFailures), so one Python worker
    that dies mid-task (a crash in a native decoder, the OOM killer) would fail the whole query.
    ``F`` is ``$SQLEXT_TASK_MAX_FAILURES`` (default 4, Spark's cluster default).  ``None`` means
    ``$SQLEXT_MASTER`` or ``local[*]``; other masters (and ``local[N,F]``) are returned unchanged.
    Used by `sqlext serve`; not by `sqlext train`, whose BigDL engine parses ``local[N]`` itself.
    """
    import re

    master = master or os.environ.get("SQLEXT_MASTER", "local[*]")
    match = re.fullmatch(r"\s*local(?:\[(\*|\d+)\])?\s*", master)
    if not match:
        return master
    return f"local[{match.group(1) or 1},{int(os.environ.get('SQLEXT_TASK_MAX_FAILURES', '4'))}]"
