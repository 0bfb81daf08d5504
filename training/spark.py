"""The SparkSession `sqlext train` runs on: sqlext's session settings plus BigDL's jars and engine.

BigDL's own ``init_nncontext()`` builds a bare SparkContext, which would lose sqlext's settings
(Hive metastore, warehouse, loopback driver, Python executable).  So the session is built with
``sqlext.session.builder`` and BigDL's jars are handed to Spark through ``spark.jars``: they land
in Spark's child class loader, so the jackson, guava and log4j copies inside BigDL's fat jar never
shadow Spark's own (putting them on ``spark.driver.extraClassPath`` would).  ``init_nncontext()``
then finds that SparkContext and only initialises the BigDL engine on it.
"""
import contextlib
import io
import os

# The settings from BigDL's spark-bigdl.conf that still exist in Spark 3.5 (the rest are defaults).
BIGDL_SETTINGS = {
    "spark.serializer": "org.apache.spark.serializer.JavaSerializer",  # Spark's default; BigDL warns if unset
    "spark.shuffle.reduceLocality.enabled": "false",
    "spark.scheduler.minRegisteredResourcesRatio": "1.0",
    "spark.speculation": "false",
}
# feature vectors come to the driver as Arrow arrays (a validation set, or all of them for a local head)
TRAIN_SETTINGS = {"spark.sql.execution.arrow.pyspark.enabled": "true"}
# `sqlext train` is a short-lived driver: without C2 (the JIT for long-running code) and with the serial
# collector, 180 images trained in 21 s instead of 25, and 360 12 MP photos featurized in 6.6 s instead of
# 9.2 (BENCHMARKS.md).  Long-running `sqlext serve` keeps the JVM's defaults.
TRAIN_JAVA_OPTIONS = os.environ.get("SQLEXT_TRAIN_JAVA_OPTIONS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")


def bigdl_jars() -> list:
    from bigdl.dllib.utils.engine import get_bigdl_jars

    jars = sorted(get_bigdl_jars())
    if not jars:
        raise SystemExit("error: BigDL's jars are missing; install bigdl-dllib-spark3 and bigdl-core (make setup)")
    return jars


@contextlib.contextmanager
def quiet_stdout():
    """BigDL's Python side prints a line for every JVM object it creates; keep stdout for results."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


@contextlib.contextmanager
def quiet_jvm_stdout(jvm):
    """Silence the JVM's System.out (BigDL's engine prints its pickler registrations there)."""
    system = jvm.java.lang.System
    original = system.out
    system.setOut(jvm.java.io.PrintStream(jvm.java.io.OutputStream.nullOutputStream()))
    try:
        yield
    finally:
        system.setOut(original)


def start(home, master: str = None, hive: bool = True, archive: str = "map"):
    """Start the training session.  ``hive=False`` keeps the catalog in memory, so training from a
    folder never opens the metastore (embedded Derby allows one process, e.g. a running server).
    ``archive``: see sqlext.session.builder ("write": stop with sqlext.session.stop)."""
    from sqlext import session

    conf = dict(BIGDL_SETTINGS, **TRAIN_SETTINGS, **{"spark.jars": ",".join(bigdl_jars())})
    builder = session.builder(home, "sqlext-train", master, conf, TRAIN_JAVA_OPTIONS, archive)
    if not hive:
        builder = builder.config("spark.sql.catalogImplementation", "in-memory")
    spark = builder.getOrCreate()
    sc = spark.sparkContext
    sc.setLogLevel(os.environ.get("SQLEXT_LOG_LEVEL", "WARN"))
    jvm = sc._jvm
    for noisy in ("com.intel.analytics.bigdl.dllib.utils.Engine$",   # wants its own extraJavaOptions
                  "org.apache.spark.SparkContext",  # "Using an existing SparkContext": ours, on purpose
                  "org.apache.spark.storage.BlockManager"):          # BigDL frees blocks it never stored
        jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(noisy, jvm.org.apache.logging.log4j.Level.ERROR)
    python_home = os.environ.get("PYTHONHOME")
    with quiet_stdout(), quiet_jvm_stdout(jvm):
        from bigdl.dllib.nncontext import init_nncontext

        init_nncontext(redirect_spark_log=False)  # True would write bigdl.log into the working directory
    # init_nncontext sets PYTHONHOME to the venv folder, which holds no standard library: every Python
    # started from this process afterwards would die ("No module named 'encodings'").
    if python_home is None:
        os.environ.pop("PYTHONHOME", None)
    else:
        os.environ["PYTHONHOME"] = python_home
    return spark


def total_cores(spark) -> int:
    """BigDL's node count x cores per node: its distributed batch size must be a multiple of this."""
    try:
        engine = spark._jvm.com.intel.analytics.bigdl.dllib.utils.Engine
        return int(engine.nodeNumber()) * int(engine.coreNumber())
    except Exception:  # the engine not reachable through py4j: Spark's view is the same in practice
        return int(spark.sparkContext.defaultParallelism)
