"""Worker-side prediction cache: (image content, model) -> (label, probability).

A dashboard that refreshes, or a query that calls ``image_label`` and ``classify_image`` on the
same column, asks for the same predictions again; this answers them without decoding or
running the model.  The key is a digest of the image bytes (SHA-256, truncated to 16 bytes)
plus a tag of the model: a digest of the bundle's whole manifest (name, version, model sha256,
labels, preprocessing) and of ``PIPELINE_VERSION``.  Keys are content-addressed, so a result
can never be served for different bytes or a different model, whatever process stored it.

Three levels, all bounded:

* **in the JVM, before the bytes are sent to Python** (``sqlext/java/sqlext/PredictionCache.java``):
  when SQL names the model literally (or omits it), the functions probe an LRU of
  ``$SQLEXT_PREDICTION_CACHE_ENTRIES`` entries in the executor JVM and send NULL instead of a
  cached image's bytes; a repeated query then costs the table scan and little else.  Keyed the
  same way (``functions.cache_tags``); the digest it computes goes with the bytes to the worker,
  which keys its own levels with it, and back (``functions.build_keyed``): one hash per image.
* **in memory, per Python worker**: an LRU of at most ``$SQLEXT_PREDICTION_CACHE_ENTRIES``
  entries (default 50000, ~250 bytes each: ~12 MB per worker).
* **shared by the workers of the machine**: an SQLite file (WAL mode) holding at most
  ``$SQLEXT_PREDICTION_CACHE_SHARED_ENTRIES`` rows (default 1000000, ~60 bytes each on disk;
  oldest written are dropped first).  Spark hands a query's tasks to whichever idle Python
  worker comes first, so without it the second run of a query can land rows on the worker
  that never saw them.  Folder: ``$SQLEXT_PREDICTION_CACHE_DIR``, else
  ``$SQLEXT_HOME/cache``, else ``<tempdir>/sqlext-<uid>``.  ``..._SHARED_ENTRIES=0`` turns it off.

``$SQLEXT_PREDICTION_CACHE=off`` turns the whole cache off (no hashing either).  Only
successful predictions are stored: an undecodable image is tried (and reported) every time.
The cache is best effort: an SQLite error disables the shared level in that worker, with
one warning, and queries go on.
"""
import hashlib
import logging
import os
import sqlite3
import tempfile
from collections import OrderedDict
from pathlib import Path

log = logging.getLogger("sqlext.predict")

# Bump when sqlext.image / the engine start producing different results for the same bundle.
PIPELINE_VERSION = "1"
DIGEST_BYTES = 16
ENV_ENABLED = "SQLEXT_PREDICTION_CACHE"
ENV_ENTRIES = "SQLEXT_PREDICTION_CACHE_ENTRIES"
DEFAULT_ENTRIES = 50000  # per level: the JVM's LRU and each worker's
ENV_SHARED_ENTRIES = "SQLEXT_PREDICTION_CACHE_SHARED_ENTRIES"
ENV_DIR = "SQLEXT_PREDICTION_CACHE_DIR"
_ATTR = "sqlext_digests"  # digests of a pandas Series, kept on the Series for the next UDF on it


def entries_setting() -> int:
    return int(os.environ.get(ENV_ENTRIES, DEFAULT_ENTRIES))


def enabled() -> bool:
    return os.environ.get(ENV_ENABLED, "on").strip().lower() not in ("off", "0", "false", "no")


def model_tag(manifest_json: str) -> bytes:
    return hashlib.blake2b(f"{PIPELINE_VERSION}\0{manifest_json}".encode(), digest_size=8).digest()


def digest(content) -> bytes:
    return hashlib.sha256(content).digest()[:DIGEST_BYTES]


def series_digests(contents) -> list:
    """Digest of every row of the pandas Series ``contents`` (None for NULL), computed once per Series.

    Spark passes one Series object to every UDF of a query that reads the same column, so
    ``classify_image(content)`` next to ``image_label(content)`` does not hash the images again.
    """
    cached = contents.attrs.get(_ATTR)
    if cached is not None and len(cached) == len(contents):
        return cached
    digests = [None if c is None else digest(c) for c in contents.values]
    contents.attrs[_ATTR] = digests
    return digests


def default_dir() -> Path:
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR])
    if os.environ.get("SQLEXT_HOME"):
        return Path(os.environ["SQLEXT_HOME"]) / "cache"
    return Path(tempfile.gettempdir()) / f"sqlext-{os.getuid()}"


class _Shared:
    """The SQLite level: ``get(keys) -> {key: (label, prob)}``, ``put(rows)``."""

    def __init__(self, folder: Path, max_entries: int):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "predictions.sqlite3"
        self.max_entries = max_entries
        self.db = sqlite3.connect(str(self.path), timeout=10, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")  # a cache: losing the last writes on a crash is fine
        self.db.execute("CREATE TABLE IF NOT EXISTS predictions (k BLOB UNIQUE NOT NULL, label TEXT, prob REAL)")
        self.writes = 0

    def get(self, keys: list) -> dict:
        found = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for k, label, prob in self.db.execute(f"SELECT k, label, prob FROM predictions WHERE k IN ({marks})",
                                                   chunk):
                found[bytes(k)] = (label, prob)
        return found

    def put(self, rows: list) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR REPLACE INTO predictions (k, label, prob) VALUES (?, ?, ?)", rows)
        self.writes += len(rows)
        if self.writes >= max(1000, self.max_entries // 100):
            self.writes = 0
            with self.db:
                self.db.execute("DELETE FROM predictions WHERE rowid <= (SELECT max(rowid) FROM predictions) - ?",
                                (self.max_entries,))


class PredictionCache:
    def __init__(self, max_entries: int, shared_dir=None, shared_entries: int = 0):
        self.max_entries = max_entries
        self.memory = OrderedDict()
        self.shared = None
        if shared_dir is not None and shared_entries > 0:
            try:
                self.shared = _Shared(Path(shared_dir), shared_entries)
            except (OSError, sqlite3.Error) as exc:
                log.warning("prediction cache: shared level off (%s: %s)", shared_dir, exc)
        self.stats = {"memory_hits": 0, "shared_hits": 0, "misses": 0, "stored": 0}

    @classmethod
    def from_env(cls):
        """The cache configured by the environment, or None if ``$SQLEXT_PREDICTION_CACHE=off``."""
        if not enabled():
            return None
        entries = entries_setting()
        shared = int(os.environ.get(ENV_SHARED_ENTRIES, "1000000"))
        if entries <= 0 and shared <= 0:
            return None
        return cls(entries, default_dir() if shared > 0 else None, shared)

    def lookup(self, tag: bytes, digests: list) -> dict:
        """{position: (label, probability)} for the positions of ``digests`` that are cached."""
        found, wanted = {}, {}
        for i, d in enumerate(digests):
            if d is None:
                continue
            key = tag + d
            hit = self.memory.get(key)
            if hit is not None:
                self.memory.move_to_end(key)
                found[i] = hit
                self.stats["memory_hits"] += 1
            else:
                wanted.setdefault(key, []).append(i)
        if wanted and self.shared is not None:
            try:
                rows = self.shared.get(list(wanted))
            except sqlite3.Error as exc:
                self._shared_failed(exc)
                rows = {}
            for key, value in rows.items():
                self._remember(key, value)
                for i in wanted.pop(key):
                    found[i] = value
                    self.stats["shared_hits"] += 1
        self.stats["misses"] += sum(len(v) for v in wanted.values())
        return found

    def store(self, tag: bytes, items) -> None:
        """Store ``(digest, label, probability)`` items."""
        rows = []
        for d, label, prob in items:
            key = tag + d
            self._remember(key, (label, float(prob)))
            rows.append((key, label, float(prob)))
        self.stats["stored"] += len(rows)
        if rows and self.shared is not None:
            try:
                self.shared.put(rows)
            except sqlite3.Error as exc:
                self._shared_failed(exc)

    def _remember(self, key: bytes, value: tuple) -> None:
        if self.max_entries <= 0:
            return
        self.memory[key] = value
        self.memory.move_to_end(key)
        while len(self.memory) > self.max_entries:
            self.memory.popitem(last=False)

    def _shared_failed(self, exc) -> None:
        log.warning("prediction cache: shared level off in this worker after an SQLite error (%s)", exc)
        self.shared = None
