"""Build the SparkSession every sqlext command uses: Hive support, state under $SQLEXT_HOME."""
import os
import sys

from . import jvm
from .config import Home


def builder(home: Home, app_name: str, master: str = None, conf: dict = None):
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    home.ensure()
    settings = {
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": str(home.warehouse),
        "spark.hadoop.javax.jdo.option.ConnectionURL":
            f"jdbc:derby:;databaseName={home.metastore};create=true",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={home.logs}",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": os.environ.get("SQLEXT_SPARK_UI", "false"),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "64",
        "spark.sql.shuffle.partitions": os.environ.get("SQLEXT_SHUFFLE_PARTITIONS", "8"),
        "spark.python.worker.reuse": "true",
        "spark.driver.extraClassPath": str(jvm.jar_path(home)),
    }
    settings.update(conf or {})
    b = SparkSession.builder.appName(app_name).master(master or os.environ.get("SQLEXT_MASTER", "local[*]"))
    for key, value in settings.items():
        b = b.config(key, value)
    return b.enableHiveSupport()


def start(home: Home, app_name: str, master: str = None, conf: dict = None):
    spark = builder(home, app_name, master, conf).getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("SQLEXT_LOG_LEVEL", "WARN"))
    return spark
