"""HBase tables as views ``hbase.NAME`` that every JDBC session can query, read live.

``sqlext serve --hbase-table NAME=HOST:PORT/TABLE[:FAMILY:QUALIFIER][?OPTIONS]`` maps an HBase
table, reached through its Thrift1 gateway (``hbase thrift start``) with happybase, to::

    hbase.NAME (key STRING, image BINARY, <one STRING per sampled column>, cells MAP<STRING,STRING>)

How it works (Spark 3.5 has no Python data source API):
  * ``hbase_scan`` is a Python UDTF (``key, image, cells``) closing over the server's mappings.
    It is registered in Spark's *built-in* table-function registry, so every session (every JDBC
    connection) has it and a persistent view may reference it.
  * ``hbase.NAME`` is a persistent view over
    ``hbase_scan(TABLE(SELECT id FROM range(0, N, 1, N)), 'NAME', 'SPLIT KEYS')``:
    ``range`` makes N Spark partitions holding one row each; the UDTF instance of partition ``i``
    scans row-key range ``i`` (regions' start keys, hex in the view text).  Every query scans
    HBase again, so rows put after the server started are seen by the next query.
  * A refresher (``HBaseViews.run``, every ``--reload-interval``) re-reads the regions and samples
    the column names (``KeyOnlyFilter``, no values); when either changed it updates the view
    with ``ALTER VIEW ... AS`` (atomic; queries running meanwhile are unaffected).
  * The views carry the TBLPROPERTY ``sqlext.hbase.mapping``; a table or view of a mapped NAME
    without it is never taken over.  Views are never dropped (a PostgreSQL metastore may be shared
    by several servers): one whose NAME the server does not map fails with an error saying so.

Contracts:
  * ``key``: the row key, UTF-8 (undecodable bytes as ``\\xNN``); ``image``: the bytes of the
    image cell, NULL if the row has none; ``cells``: every other cell as
    ``'family:qualifier' -> value`` (UTF-8 text), so columns that appeared after the last
    sample are still reachable; named columns are projections of ``cells``.
  * An unreachable gateway or an HBase error fails the query with an ``HBaseError`` naming the
    view and the gateway; the server keeps serving.  With the gateway down at start, the view
    still exists (key, image, cells; one range) and is completed once the gateway answers.
  * Every query scans the whole table: filters, projections and LIMIT are applied by Spark.
"""
import argparse
import logging
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qsl

log = logging.getLogger("sqlext.hbase")

DATABASE = "hbase"
FUNCTION = "hbase_scan"
RETURN_TYPE = "key string, image binary, cells map<string,string>"
PROPERTY = "sqlext.hbase.mapping"      # marks the views this module made (and may alter)
DEFAULT_IMAGE_COLUMN = "cf:image"
SAMPLE_ROWS = 200                      # rows sampled (keys and column names only) for named columns
MAX_NAMED_COLUMNS = 100
MAX_RANGES = 1024                      # Spark partitions per scan at most (regions are merged beyond)
RESERVED = ("key", "image", "cells")

METAVAR = "NAME=HOST:PORT/TABLE[:FAMILY:QUALIFIER][?OPTIONS]"
SYNTAX = METAVAR.replace("OPTIONS", "transport=buffered|framed&protocol=binary|compact&batch=ROWS&timeout=SECONDS")
HELP = ("serve the HBase table TABLE (or NAMESPACE:TABLE), reached through the HBase Thrift1 gateway "
        "at HOST:PORT (`hbase thrift start`), as the view hbase.NAME (key STRING, image BINARY, one "
        "STRING column per sampled column, cells MAP<STRING,STRING>), read live by every query and "
        f"split across Spark partitions by region. FAMILY:QUALIFIER: the image cell (default "
        f"{DEFAULT_IMAGE_COLUMN}). OPTIONS, '&'-separated: transport=buffered|framed and "
        "protocol=binary|compact as the gateway runs (default buffered, binary), batch=ROWS per "
        "scanner call (default 32), timeout=SECONDS per Thrift call (default 60). Repeatable. "
        "Example: --hbase-table photos=hbase-gw:9090/photos:cf:image")


class MappingError(argparse.ArgumentTypeError, ValueError):
    """A ``--hbase-table`` value that does not parse (argparse prints the message)."""


class HBaseError(RuntimeError):
    """HBase unreachable or refusing: the message names the view, the gateway and the cause."""


@dataclass(frozen=True)
class Mapping:
    """One ``--hbase-table`` value."""
    name: str
    host: str
    port: int
    table: str
    family: str = "cf"
    qualifier: str = "image"
    transport: str = "buffered"
    protocol: str = "binary"
    batch: int = 32
    timeout: float = 60.0

    @property
    def view(self) -> str:
        return f"{DATABASE}.{self.name}"

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def image_column(self) -> bytes:
        return f"{self.family}:{self.qualifier}".encode()

    @property
    def spec(self) -> str:
        text = f"{self.name}={self.address}/{self.table}:{self.family}:{self.qualifier}"
        options = [f"{k}={getattr(self, k)}" for k in ("transport", "protocol", "batch", "timeout")
                   if getattr(self, k) != Mapping.__dataclass_fields__[k].default]
        return text + ("?" + "&".join(options) if options else "")


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
_ADDRESS = re.compile(r"(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:/\[\]]+)):(?P<port>\d+)$")


def parse_mapping(text: str) -> Mapping:
    """Parse ``NAME=HOST:PORT/TABLE[:FAMILY:QUALIFIER][?OPTIONS]`` (see ``SYNTAX``).

    TABLE with one colon is NAMESPACE:TABLE; with two it is TABLE:FAMILY:QUALIFIER; with three,
    NAMESPACE:TABLE:FAMILY:QUALIFIER.  Raises ``MappingError`` saying what is wrong.
    """
    def fail(why):
        raise MappingError(f"{text!r}: {why}; expected {SYNTAX}")

    name, eq, rest = text.partition("=")
    if not eq or not _NAME.match(name.strip()):
        fail("NAME must be a SQL identifier (letters, digits, _) followed by '='")
    rest, _, query = rest.partition("?")
    address, slash, target = rest.partition("/")
    match = _ADDRESS.match(address.strip())
    if not slash or not match:
        fail("HOST:PORT/ is missing")
    port = int(match["port"])
    if not 0 < port < 65536:
        fail(f"port {port} is out of range")
    parts = target.strip().split(":")
    if not all(parts) or len(parts) > 4:
        fail(f"cannot read TABLE[:FAMILY:QUALIFIER] from {target!r}")
    table_parts, column = (parts, DEFAULT_IMAGE_COLUMN.split(":")) if len(parts) <= 2 else (parts[:-2], parts[-2:])
    options = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        fail(f"cannot read options from {query!r}")
    for key, value in pairs:
        if (key, value) in {("transport", "buffered"), ("transport", "framed"),
                            ("protocol", "binary"), ("protocol", "compact")}:
            options[key] = value
        elif key == "batch" and value.isdigit() and int(value) > 0:
            options[key] = int(value)
        elif key == "timeout" and re.fullmatch(r"\d+(\.\d*)?", value) and float(value) > 0:
            options[key] = float(value)
        else:
            fail(f"bad option {key}={value!r}")
    return Mapping(name.strip().lower(), match["v6"] or match["host"], port, ":".join(table_parts),
                   column[0], column[1], **options)


def check_unique(mappings) -> list:
    """Parse strings, refuse two mappings with one NAME; return the list of ``Mapping``."""
    parsed = [m if isinstance(m, Mapping) else parse_mapping(m) for m in mappings or ()]
    names = [m.name for m in parsed]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise MappingError(f"--hbase-table NAME {', '.join(twice)} given more than once")
    return parsed


# ---- talking to the gateway (driver and workers) ------------------------------------------

def connect(m: Mapping, timeout: float = None):
    """An open happybase connection to ``m``'s gateway (socket timeout ``timeout`` or ``m.timeout``)."""
    import happybase

    conn = happybase.Connection(m.host, m.port, timeout=int(1000 * (timeout or m.timeout)),
                                autoconnect=False, transport=m.transport, protocol=m.protocol)
    conn.open()
    return conn


def _reason(exc) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return message.decode(errors="replace") if isinstance(message, bytes) else str(message)


@contextmanager
def gateway_errors(m: Mapping, doing: str):
    """Turn socket/Thrift failures inside the block into an ``HBaseError`` a SQL user can act on."""
    from thriftpy2.thrift import TException
    from thriftpy2.transport import TTransportException

    try:
        yield
    except (TTransportException, OSError) as exc:
        raise HBaseError(f"{m.view}: cannot reach the HBase Thrift gateway at {m.address} while "
                         f"{doing} (is `hbase thrift start` running there?): {_reason(exc)}") from None
    except TException as exc:
        raise HBaseError(f"{m.view}: the HBase Thrift gateway at {m.address} failed {doing} of table "
                         f"{m.table!r}: {type(exc).__name__}: {_reason(exc)}") from None


def _text(value: bytes) -> str:
    return value.decode("utf-8", "backslashreplace")


def scan(m: Mapping, start: bytes = b"", stop: bytes = b""):
    """Yield ``(key, image, cells)`` for the rows in ``[start, stop)`` (b"" = open end), live.

    Rows arrive ``m.batch`` at a time; ``cells`` holds every cell but the image as text.
    """
    with gateway_errors(m, "scanning"):
        conn = connect(m)
        try:
            rows = conn.table(m.table).scan(row_start=start or None, row_stop=stop or None,
                                            batch_size=m.batch)
            for key, data in rows:
                image = data.pop(m.image_column, None)
                yield _text(key), image, {_text(c): _text(v) for c, v in data.items()}
        finally:
            conn.close()


@dataclass(frozen=True)
class Layout:
    """What a view is built from: region split keys and the named (SQL name, cell) columns."""
    splits: tuple = ()
    columns: tuple = ()


def discover(m: Mapping, timeout: float = 10.0) -> Layout:
    """Read ``m``'s regions and sample column names (keys only, no values). Raises ``HBaseError``."""
    with gateway_errors(m, "reading regions and columns"):
        conn = connect(m, min(timeout, m.timeout))
        try:
            table = conn.table(m.table)
            splits = sorted({r["start_key"] for r in table.regions() if r["start_key"]})
            cells = set()
            for _, data in table.scan(filter=b"KeyOnlyFilter()", limit=SAMPLE_ROWS, batch_size=SAMPLE_ROWS):
                cells.update(data)
        finally:
            conn.close()
    if len(splits) >= MAX_RANGES:
        step = -(-len(splits) // (MAX_RANGES - 1))
        splits = splits[step - 1::step]
    cells.discard(m.image_column)
    return Layout(tuple(splits), name_columns(sorted(_text(c) for c in cells)))


def _identifier(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "col"


def name_columns(cells) -> tuple:
    """``['meta:caption', ...]`` -> ``(('caption', 'meta:caption'), ...)``: the qualifier as SQL
    name, ``family_qualifier`` when that clashes, a numeric suffix if that clashes too."""
    taken, named = set(RESERVED), []
    qualifiers = [_identifier(c.split(":", 1)[-1]) for c in cells]
    for cell, qualifier in zip(cells[:MAX_NAMED_COLUMNS], qualifiers):
        name = qualifier if qualifiers.count(qualifier) == 1 and qualifier not in taken else _identifier(cell)
        base, n = name, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        taken.add(name)
        named.append((name, cell))
    return tuple(named)


# ---- SQL side (driver) ---------------------------------------------------------------------

def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def select_sql(m: Mapping, layout: Layout) -> str:
    """The view's query: ``hbase_scan`` over N one-row partitions, one per key range."""
    n = len(layout.splits) + 1
    named = [f"cells[{_literal(cell)}] AS `{name}`" for name, cell in layout.columns]
    splits = ",".join(s.hex() for s in layout.splits)
    return (f"SELECT key, image, {''.join(c + ', ' for c in named)}cells\n"
            f"FROM {FUNCTION}(TABLE(SELECT id FROM range(0, {n}, 1, {n})), {_literal(m.name)}, {_literal(splits)})")


def view_properties(m: Mapping) -> str:
    """TBLPROPERTIES: the ownership mark (the mapping) and the comment DESCRIBE shows."""
    comment = (f"HBase table {m.table} via the Thrift gateway {m.address}, read live by every query. "
               f"key: the row key; image: the cell {m.family}:{m.qualifier}; named columns: sampled "
               "cells; cells: every cell but the image, 'family:qualifier' -> value.")
    return f"{_literal(PROPERTY)} = {_literal(m.spec)}, 'comment' = {_literal(comment)}"


def udtf_class(mappings: dict):
    """The ``hbase_scan(TABLE(slots), name, splits_hex)`` handler, closing over ``mappings``."""

    class HBaseScan:
        """Each input row ``id`` = i scans key range i of the comma-separated hex split keys."""

        def eval(self, slot, name, splits):
            m = mappings.get(name)
            if m is None:
                raise HBaseError(f"{FUNCTION}: no HBase table {name!r} is mapped; the server maps "
                                 f"{', '.join(sorted(mappings)) or 'none'} (sqlext serve --hbase-table)")
            bounds = [b""] + [bytes.fromhex(h) for h in (splits or "").split(",") if h] + [b""]
            i = slot[0]
            if 0 <= i < len(bounds) - 1:
                yield from scan(m, bounds[i], bounds[i + 1])

    return HBaseScan


def _expression_info(jvm):
    return jvm.org.apache.spark.sql.catalyst.expressions.ExpressionInfo(
        "sqlext.hbase.HBaseScan", None, FUNCTION,
        f"{FUNCTION}(TABLE(slots), name, splits) - Scans the HBase table the server maps as NAME "
        "(sqlext serve --hbase-table); used by the views in the hbase database.",
        "\n    Arguments:\n      * slots - TABLE with a BIGINT column: row i scans key range i\n"
        "      * name - STRING, a mapped NAME\n      * splits - STRING, hex row keys separating the ranges\n  ",
        f"\n    Examples:\n      > SELECT key, image_label(image) FROM {DATABASE}.photos;\n  ",
        "", "", "", "", "python_udf")


def register_function(spark, mappings: dict) -> None:
    """Register ``hbase_scan`` as a built-in table function of this JVM (all sessions, views)."""
    from pyspark.sql.functions import udtf

    jvm, jss = spark._jvm, spark._jsparkSession
    spark.udtf.register(FUNCTION, udtf(udtf_class(mappings), returnType=RETURN_TYPE))
    ident = jvm.org.apache.spark.sql.catalyst.FunctionIdentifier(FUNCTION)
    builder = jss.sessionState().tableFunctionRegistry().lookupFunctionBuilder(ident).get()
    # Built-in, not an injected session function: Spark refuses persistent views over temporary
    # functions, and sessions created later clone the built-in registry.
    jvm.org.apache.spark.sql.catalyst.analysis.TableFunctionRegistry.builtin().registerFunction(
        ident, _expression_info(jvm), builder)


class HBaseViews:
    """Keeps ``hbase.NAME`` views in step with the mappings, regions and sampled columns.

    A view is created once, then changed with ``ALTER VIEW ... AS`` (one metastore update):
    ``CREATE OR REPLACE VIEW`` drops and re-creates, so queries running meanwhile would fail.
    """

    def __init__(self, spark, mappings):
        self.spark, self.mappings = spark, {m.name: m for m in mappings}
        self.published, self.existing, self.failing = {}, set(), set()
        self.lock = threading.Lock()

    def _ours(self, name: str) -> bool:
        props = dict(self.spark.sql(f"SHOW TBLPROPERTIES `{DATABASE}`.`{name}`").collect())
        return PROPERTY in props

    def prepare(self) -> None:
        """Note which mapped NAMEs already have their view (from an earlier run); refuse to take
        over a table or view of a mapped NAME that this module did not make (``HBaseError``)."""
        if not self.mappings or not self.spark.catalog.databaseExists(DATABASE):
            return
        for table in self.spark.catalog.listTables(DATABASE):
            if table.name not in self.mappings:
                continue
            if table.tableType != "VIEW" or not self._ours(table.name):
                raise HBaseError(f"{DATABASE}.{table.name} exists and was not made by --hbase-table; "
                                 "drop it or map the HBase table under another NAME")
            self.existing.add(table.name)

    def _publish(self, m: Mapping, layout: Layout) -> None:
        view = f"`{DATABASE}`.`{m.name}`"
        if m.name in self.published or m.name in self.existing:
            self.spark.sql(f"ALTER VIEW {view} AS {select_sql(m, layout)}")
            if m.name not in self.published:
                self.spark.sql(f"ALTER VIEW {view} SET TBLPROPERTIES ({view_properties(m)})")
        else:
            self.spark.sql(f"CREATE VIEW {view} TBLPROPERTIES ({view_properties(m)}) AS {select_sql(m, layout)}")
        self.published[m.name] = layout

    def refresh(self) -> list:
        """Re-read every mapping's layout; update the views whose layout changed; return their names."""
        changed = []
        with self.lock:
            for name, m in self.mappings.items():
                try:
                    layout = discover(m)
                    if name in self.failing:
                        log.warning("%s: the gateway %s answers again", m.view, m.address)
                    self.failing.discard(name)
                except HBaseError as exc:
                    if name not in self.failing:
                        log.warning("%s", exc)
                    self.failing.add(name)
                    if name in self.published:
                        continue
                    layout = Layout()
                if self.published.get(name) != layout:
                    self._publish(m, layout)
                    changed.append(name)
                    log.warning("%s -> %s: %d key range(s), columns: %s", m.view, m.spec,
                                len(layout.splits) + 1, ", ".join(c for c, _ in layout.columns) or "-")
        return changed

    def run(self, interval: float, stop: threading.Event) -> None:
        while not stop.wait(interval):
            try:
                self.refresh()
            except Exception:  # a failed refresh must not stop the refresher
                log.exception("hbase view refresh failed")


def publish(spark, mappings) -> "HBaseViews | None":
    """Register ``hbase_scan`` (always: views left from other runs then fail clearly) and create
    or update ``hbase.NAME`` for every mapping.

    Returns the ``HBaseViews`` to keep refreshing, or None when nothing is mapped.
    """
    views = HBaseViews(spark, check_unique(mappings))
    register_function(spark, views.mappings)
    if not views.mappings:
        return None
    views.prepare()
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}` COMMENT "
              f"{_literal('HBase tables mapped by sqlext serve --hbase-table, read live')}")
    views.refresh()
    return views
