"""`sqlext serve`: the Spark Thrift Server (HiveServer2 protocol) with the image functions.

Every JDBC/ODBC connection gets its own Spark session (singleSession stays false),
and every one of them sees classify_image / image_label.  A watcher re-publishes
the functions when bundles are added, so new connections see new versions.
"""
import logging
import signal
import socket
import threading
import time
from pathlib import Path

from . import auth as _auth
from . import catalog as _catalog
from . import functions
from . import hbase as _hbase
from . import keepalive
from .config import Home
from .registry import Registry
from .session import start as start_session, stop as stop_session, with_task_retries

log = logging.getLogger("sqlext.server")


class ModelWatcher:
    """Keeps the registered functions in step with the bundles on disk."""

    def __init__(self, spark, home: Home, default_model: str):
        self.spark, self.home, self.default_model = spark, home, default_model
        self.catalog, self.fingerprint = None, None
        self.lock = threading.Lock()

    def refresh(self) -> bool:
        registry = Registry.scan(self.home.models)
        with self.lock:
            if registry.fingerprint() == self.fingerprint:
                return False
            default = self.default_model or _first_default(registry)
            self.catalog = _catalog.build(self.spark.sparkContext, registry, default, self.catalog)
            functions.register(self.spark, self.catalog)
            self.fingerprint = registry.fingerprint()
        log.warning("models: %s (default %s)", ", ".join(sorted(self.catalog.payloads)) or "none", default or "none")
        return True

    def run(self, interval: float, stop: threading.Event) -> None:
        while not stop.wait(interval):
            try:
                self.refresh()
            except Exception:  # a bad scan must not stop the watcher
                log.exception("model refresh failed")


def _first_default(registry: Registry) -> str:
    names = registry.names()
    return "imagenet" if "imagenet" in names else (names[0] if names else "")


def _wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"Thrift server did not open {host}:{port} within {timeout:.0f}s")


def thrift_conf(host: str, port: int, operation_logs: Path, auth: dict = None) -> dict:
    """Thrift server settings; ``auth`` is what ``auth.hive_settings`` returned (None: no authentication)."""
    return {
        "hive.server2.thrift.bind.host": host,
        "hive.server2.thrift.port": str(port),
        "hive.server2.transport.mode": "binary",
        # Hive's default, /tmp/<user>/operation_logs, is shared by every server on the machine, and each
        # server deletes the whole folder when it stops: hence one folder per server (see serve)
        "hive.server2.logging.operation.log.location": str(operation_logs),
        "spark.sql.hive.thriftServer.singleSession": "false",
        **(auth or {}),
    }


def serve(home: Home, host: str = "127.0.0.1", port: int = 10000, default_model: str = "",
          master: str = None, reload_interval: float = 5.0, conf: dict = None, on_ready=None,
          auth: dict = None, hbase_tables=()) -> None:
    """Start the server, print ``ready: jdbc:hive2://HOST:PORT/default``, serve until SIGTERM/SIGINT.

    ``auth``: HiveServer2 authentication settings from ``auth.hive_settings`` (None: no authentication).
    ``hbase_tables``: ``--hbase-table`` values (strings or ``hbase.Mapping``), served as ``hbase.NAME``.
    """
    keepalive_seconds = keepalive.interval_seconds()
    for line in _auth.warnings(host, auth):
        log.warning("%s", line)
    log.warning("authentication: %s", (auth or {}).get("hive.server2.authentication", "NONE"))
    hbase_tables = _hbase.check_unique(hbase_tables)
    operation_logs = home.logs / "operation_logs" / str(port)  # servers sharing a PostgreSQL metastore share a home
    operation_logs.mkdir(parents=True, exist_ok=True)
    settings = thrift_conf(host, port, operation_logs, auth)
    settings.update(conf or {})
    # a task whose Python worker died is retried instead of failing the query (session.with_task_retries)
    # no class archive: it starts the server ~1.5 s sooner, but one-row queries on the running server took
    # ~20 ms longer with it (p50 175 vs 155 ms, two servers interleaved), and a server starts once
    spark = start_session(home, "sqlext-serve", with_task_retries(master), settings, archive="off")
    watcher = ModelWatcher(spark, home, default_model)
    watcher.refresh()
    hbase_views = _hbase.publish(spark, hbase_tables)
    jvm = spark._jvm
    for key, value in (auth or {}).items():  # HiveServer2 reads them from a fresh HiveConf per login
        jvm.java.lang.System.setProperty(key, value)
    jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2.startWithContext(spark._jsparkSession.sqlContext())
    _wait_for_port(host, port, 120)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=watcher.run, args=(reload_interval, stop), daemon=True, name="model-watcher").start()
    if hbase_views:
        threading.Thread(target=hbase_views.run, args=(reload_interval, stop), daemon=True, name="hbase-views").start()
    if keepalive_seconds > 0:
        threading.Thread(target=keepalive.run, args=(spark, keepalive_seconds, stop), daemon=True,
                         name="worker-keepalive").start()
    print(f"ready: jdbc:hive2://{host}:{port}/default", flush=True)
    if on_ready:
        on_ready()
    try:
        while not stop.wait(1):
            pass
    finally:
        print("stopping", flush=True)
        stop_session(spark)
