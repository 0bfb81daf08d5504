"""An in-memory HBase Thrift1 gateway for the tests: the real protocol, a toy storage.

It serves happybase's own ``Hbase.thrift`` with thriftpy2 on a free loopback port, so the
client side (``sqlext.hbase`` -> happybase -> Thrift1) is exercised byte for byte as against
``hbase thrift start`` (buffered transport, binary protocol).  What is *not* real: storage
(a dict per table, one version per cell), regions (fixed by ``create_table(splits=...)`` /
``split()``), filters (only ``KeyOnlyFilter()``), and everything a region server does.

Contract used by the tests:
  * ``HBaseStandin().start()`` -> ``.host``, ``.port``; ``.stop()``.
  * ``create_table(name, families, splits)``, ``split(name, key)``: regions by split keys.
  * ``scans``: every scanner opened, as ``(table, start_row, stop_row)`` (bytes; b"" = open end).
  * Thrift calls happybase makes for tables(), families(), regions(), put/delete/batch,
    row()/rows(), scan() work; anything else answers ``IOError("not implemented")``.
"""
import bisect
import itertools
import threading
import time

import happybase  # noqa: F401  (loads Hbase.thrift as the module `Hbase_thrift`)
from Hbase_thrift import (AlreadyExists, BatchMutation, ColumnDescriptor, Hbase, IllegalArgument,
                          IOError, TCell, TRegionInfo, TRowResult, TScan)
from thriftpy2.server import TThreadedServer
from thriftpy2.thrift import TProcessor
from thriftpy2.transport import TServerSocket


class _Table:
    def __init__(self, name: bytes, families, splits=()):
        self.name, self.families = name, {f.rstrip(b":") for f in families}
        self.splits = sorted(set(splits))
        self.rows = {}  # key -> {b"cf:q": (value, ts)}
        self.enabled, self.region_id = True, int(time.time() * 1000)

    def regions(self):
        bounds = [b""] + self.splits + [b""]
        return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]

    def sorted_keys(self, start: bytes, stop: bytes):
        keys = sorted(self.rows)
        lo = bisect.bisect_left(keys, start or b"")
        hi = bisect.bisect_left(keys, stop) if stop else len(keys)
        return keys[lo:hi]


def _wants(column: bytes, columns) -> bool:
    if not columns:
        return True
    family = column.split(b":", 1)[0]
    return any(c == column or c.rstrip(b":") == family and b":" not in c.rstrip(b":") for c in columns)


class HBaseStandin:
    """The handler (one method per Thrift call) and the server around it."""

    def __init__(self, host: str = "127.0.0.1"):
        self.host, self.port = host, None
        self.tables, self.scans, self.lock = {}, [], threading.RLock()
        self._scanners, self._ids = {}, itertools.count(1)
        self._server, self._thread, self._closed = None, None, False

    # ---- test-side API -------------------------------------------------------------------
    def start(self) -> "HBaseStandin":
        # what thriftpy2.rpc.make_server builds, but on port 0: bind now to learn the port
        self._server = TThreadedServer(TProcessor(Hbase, self),
                                       TServerSocket(host=self.host, port=0, client_timeout=None))
        self._server.trans.listen()
        self.port = self._server.trans.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True, name="hbase-standin")
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._closed:
            try:
                client = self._server.trans.accept()
            except OSError:
                return
            threading.Thread(target=self._server.handle, args=(client,), daemon=True).start()

    def stop(self) -> None:
        self._closed = True
        if self._server:
            self._server.trans.close()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def create_table(self, name, families=(b"cf",), splits=()) -> None:
        with self.lock:
            key = _b(name)
            self.tables[key] = _Table(key, [_b(f) for f in families], [_b(s) for s in splits])

    def split(self, name, at) -> None:
        with self.lock:
            table = self._table(_b(name))
            table.splits = sorted(set(table.splits) | {_b(at)})

    # ---- Thrift1 calls -------------------------------------------------------------------
    def _table(self, name: bytes) -> _Table:
        table = self.tables.get(name)
        if table is None:
            raise IOError(message=f"TableNotFoundException: {name.decode(errors='replace')}")
        return table

    def getTableNames(self):
        with self.lock:
            return sorted(self.tables)

    def getColumnDescriptors(self, tableName):
        with self.lock:
            return {f + b":": ColumnDescriptor(name=f + b":") for f in self._table(tableName).families}

    def getTableRegions(self, tableName):
        with self.lock:
            table = self._table(tableName)
            return [TRegionInfo(startKey=s, endKey=e, id=table.region_id + i,
                                name=b"%s,%s,%d." % (table.name, s, table.region_id + i),
                                version=1, serverName=b"localhost", port=16020)
                    for i, (s, e) in enumerate(table.regions())]

    def getRegionInfo(self, row):
        """``row`` is a meta key ``TABLE,ROW,...``: the region of TABLE holding ROW."""
        with self.lock:
            name, _, rest = row.partition(b",")
            key = rest.rsplit(b",", 1)[0] if b"," in rest else rest
            for info in self.getTableRegions(name):
                if info.startKey <= key and (not info.endKey or key < info.endKey):
                    return info
            raise IOError(message="no region")

    def createTable(self, tableName, columnFamilies):
        with self.lock:
            if tableName in self.tables:
                raise AlreadyExists(message=tableName.decode(errors="replace"))
            self.tables[tableName] = _Table(tableName, [c.name for c in columnFamilies])

    def deleteTable(self, tableName):
        with self.lock:
            self._table(tableName)
            del self.tables[tableName]

    def enableTable(self, tableName):
        with self.lock:
            self._table(tableName).enabled = True

    def disableTable(self, tableName):
        with self.lock:
            self._table(tableName).enabled = False

    def isTableEnabled(self, tableName):
        with self.lock:
            return self._table(tableName).enabled

    def mutateRow(self, tableName, row, mutations, attributes):
        self.mutateRows(tableName, [BatchMutation(row=row, mutations=mutations)], attributes)

    def mutateRows(self, tableName, rowBatches, attributes):
        with self.lock:
            table = self._table(tableName)
            now = int(time.time() * 1000)
            for batch in rowBatches:
                cells = table.rows.setdefault(batch.row, {})
                for m in batch.mutations:
                    family = m.column.split(b":", 1)[0]
                    if family not in table.families:
                        raise IllegalArgument(message=f"unknown column family {family!r}")
                    if m.isDelete:
                        for col in [c for c in cells if c == m.column or m.column == family + b":"
                                    or m.column == family]:
                            del cells[col]
                    else:
                        cells[m.column] = (m.value, now)
                if not cells:
                    del table.rows[batch.row]

    def deleteAllRow(self, tableName, row, attributes):
        with self.lock:
            self._table(tableName).rows.pop(row, None)

    def _result(self, table, key, columns, key_only=False) -> TRowResult:
        cells = {c: TCell(value=b"" if key_only else v, timestamp=ts)
                 for c, (v, ts) in table.rows[key].items() if _wants(c, columns)}
        return TRowResult(row=key, columns=cells)

    def getRowWithColumns(self, tableName, row, columns, attributes):
        with self.lock:
            table = self._table(tableName)
            return [self._result(table, row, columns)] if row in table.rows else []

    def getRow(self, tableName, row, attributes):
        return self.getRowWithColumns(tableName, row, None, attributes)

    def getRowsWithColumns(self, tableName, rows, columns, attributes):
        return [r for row in rows for r in self.getRowWithColumns(tableName, row, columns, attributes)]

    def getRows(self, tableName, rows, attributes):
        return self.getRowsWithColumns(tableName, rows, None, attributes)

    def scannerOpenWithScan(self, tableName, tscan, attributes):
        key_only = False
        if tscan.filterString:
            if tscan.filterString.replace(b" ", b"") != b"KeyOnlyFilter()":
                raise IllegalArgument(message="the stand-in only knows KeyOnlyFilter()")
            key_only = True
        if tscan.reversed:
            raise IllegalArgument(message="the stand-in does not scan in reverse")
        start, stop = tscan.startRow or b"", tscan.stopRow or b""
        with self.lock:
            table = self._table(tableName)
            # a snapshot at open time, like a real scanner's read point
            results = [self._result(table, k, tscan.columns, key_only) for k in table.sorted_keys(start, stop)]
            self.scans.append((tableName, start, stop))
            scanner_id = next(self._ids)
            self._scanners[scanner_id] = iter(results)
        return scanner_id

    def scannerOpen(self, tableName, startRow, columns, attributes):
        return self.scannerOpenWithStop(tableName, startRow, b"", columns, attributes)

    def scannerOpenWithStop(self, tableName, startRow, stopRow, columns, attributes):
        return self.scannerOpenWithScan(tableName, TScan(startRow=startRow, stopRow=stopRow, columns=columns),
                                        attributes)

    def scannerGetList(self, id, nbRows):
        with self.lock:
            scanner = self._scanners.get(id)
            if scanner is None:
                raise IllegalArgument(message=f"no scanner {id}")
            return list(itertools.islice(scanner, max(nbRows, 0)))

    def scannerGet(self, id):
        return self.scannerGetList(id, 1)

    def scannerClose(self, id):
        with self.lock:
            if self._scanners.pop(id, None) is None:
                raise IllegalArgument(message=f"no scanner {id}")

    def __getattr__(self, name):
        if name.startswith("_") or name not in Hbase.thrift_services:
            raise AttributeError(name)

        def not_implemented(*_args):
            raise IOError(message=f"{name} is not implemented by the test stand-in")
        return not_implemented


def _b(value) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()
