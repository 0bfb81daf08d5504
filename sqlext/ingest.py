"""`sqlext ingest`: a folder of images -> a Hive table, managed (bytes copied) or external (not).

Managed (default): a Parquet table ``(path, label, content)`` holding every image under the
folder, at any depth.  Without ``--append`` the table is replaced by exactly the folder's images
(re-running is idempotent); with ``--append`` only paths not already in the table are added.

External (``--external``): a ``binaryFile`` table over the folder as it is, nothing copied;
columns ``path, modificationTime, length, content`` (+ partition columns).  Files added later
show up after ``REFRESH TABLE``.  Without ``--partition-by`` it holds the images directly in the
folder (``--recursive``: in all its subfolders too) whose names match ``--glob``.  With
``--partition-by label`` (or ``ds``, or ``ds,label`` for two levels) every sub-folder becomes a
partition, registered in the metastore with its own location, so both layouts work:
``DIR/label=ants/x.jpg`` (Spark's own; ``MSCK REPAIR TABLE`` also finds new ones) and
``DIR/ants/x.jpg`` (the folder name is the value).  New sub-folders need ``sqlext ingest`` again
(idempotent: it adds new partitions and drops vanished ones).  Spark applies no file-name filter
to metastore partitions, so ``--glob``/``--recursive`` are refused there: files directly in each
partition folder are rows, and a non-image file gets NULL predictions.

Bytes are read by Spark's binaryFile source on the executors and written by Spark, nothing is
collected on the driver (it only lists files and, for partitions, folders).  On a terminal the
Spark tasks show as a progress bar.
"""
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .jobprogress import JobProgress

IMAGE_GLOB = "*.{jpg,jpeg,JPG,JPEG,png,PNG,bmp,BMP,gif,GIF,webp,WEBP,tif,tiff,TIF,TIFF}"
BINARY_FILE_COLUMNS = ("path STRING COMMENT 'file URI', modificationTime TIMESTAMP, length BIGINT, "
                       "content BINARY COMMENT 'the encoded image bytes'")
SPEC_PROPERTY = "sqlext.ingest"
# Layout of managed tables (measured in BENCHMARKS.md): row groups of 8 MiB let Spark cut even one big
# file into balanced splits for every core and bound what a reader holds; files of up to 1 GiB keep a
# small table from becoming a few files of very different sizes (Spark packs whole small files into one
# task, and the core that gets the biggest pack finishes last); rows sorted by path in each file give
# row groups narrow path ranges, so `WHERE path = ...` reads one row group instead of every image, and
# pages of at most 8 rows let Parquet's page index narrow it further to a few images.
ROW_GROUP_BYTES = int(float(os.environ.get("SQLEXT_INGEST_ROW_GROUP_MB", "8")) * 1024 * 1024)
FILE_BYTES = 1024 * 1024 * 1024
PAGE_ROWS = 8
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TABLE = re.compile(rf"^(?:({_NAME})\.)?({_NAME})$")


def parse_table(name: str) -> tuple:
    match = _TABLE.match(name or "")
    if not match:
        raise SystemExit(f"invalid table name {name!r}: use DB.TABLE with letters, digits and '_'")
    return match.group(1) or "default", match.group(2)


def sql_string(text: str) -> str:
    """A Spark SQL string literal for ``text``."""
    return "'" + str(text).replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class Plan:
    """What one `sqlext ingest` will do; built and checked by ``plan()`` before Spark starts."""
    folder: Path
    db: str
    name: str
    external: bool = False
    label_from_dir: bool = False
    append: bool = False
    partition_by: tuple = ()
    glob: str = IMAGE_GLOB
    recursive: bool = False
    progress: bool = None            # None: a bar when stderr is a terminal
    spec: dict = field(default_factory=dict, compare=False)

    @property
    def table(self) -> str:
        return f"{self.db}.{self.name}"

    @property
    def qualified(self) -> str:
        return f"`{self.db}`.`{self.name}`"


def plan(folder, table: str, label_from_dir: bool = False, append: bool = False, external: bool = False,
         partition_by=(), glob: str = None, recursive: bool = False, progress: bool = None) -> Plan:
    """Check the options (raise SystemExit with the fix) and return the Plan."""
    db, name = parse_table(table)
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise SystemExit(f"no such folder: {folder}")
    if isinstance(partition_by, str):
        partition_by = [c.strip() for c in partition_by.split(",") if c.strip()]
    partition_by = tuple(partition_by or ())
    for column in partition_by:
        if not re.fullmatch(_NAME, column) or column.lower() in ("path", "modificationtime", "length", "content"):
            raise SystemExit(f"--partition-by {column!r}: use a new column name (letters, digits, '_')")
    if len({c.lower() for c in partition_by}) != len(partition_by):
        raise SystemExit("--partition-by names a column twice")
    if external:
        if append:
            raise SystemExit("--append is for managed tables: an external table reads the folder itself; "
                             f"new files show after REFRESH TABLE {db}.{name} (re-run ingest for new sub-folders)")
        if label_from_dir:
            raise SystemExit("--label-from-dir is for managed tables: with --external use --partition-by label")
        if partition_by and (glob or recursive):
            raise SystemExit("--glob/--recursive cannot be combined with --partition-by: Spark applies no "
                             "file filter inside metastore partitions, every file directly in a partition "
                             "folder is a row (non-images get NULL predictions)")
    elif partition_by:
        raise SystemExit("--partition-by needs --external (a managed table keeps the folder name with --label-from-dir)")
    root = root.resolve()
    spec = {"mode": "external" if external else "managed", "location": str(root),
            "partition_by": list(partition_by), "glob": glob or IMAGE_GLOB, "recursive": bool(recursive)}
    return Plan(root, db, name, external, label_from_dir, append, partition_by, glob or IMAGE_GLOB,
                bool(recursive), progress, spec)


def ingest(spark, folder, table: str, label_from_dir: bool = False, append: bool = False, **options) -> dict:
    """Plan and run in one call (see ``plan`` for the options); return what ``run`` returns."""
    return run(spark, plan(folder, table, label_from_dir, append, **options))


def run(spark, job: Plan) -> dict:
    """Create or update the table; return {table, kind, added, rows, partitions, summary}."""
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{job.db}`")
    return (_external if job.external else _managed)(spark, job)


# ---- managed: bytes copied into Parquet ---------------------------------------------------------

def _image_files(spark, folder: str, glob: str):
    return (spark.read.format("binaryFile")
            .option("recursiveFileLookup", "true")
            .option("pathGlobFilter", glob)
            .load(folder))


def read_images(spark, folder: str, label_from_dir: bool, glob: str = IMAGE_GLOB):
    """Every file under ``folder`` (any depth) matching ``glob`` as (path, label, content); lazy."""
    from pyspark.sql import functions as F

    frame = _image_files(spark, folder, glob)
    label = F.regexp_extract("path", r"/([^/]+)/[^/]+$", 1) if label_from_dir else F.lit(None).cast("string")
    return frame.select("path", label.alias("label"), "content")


def _table_type(spark, db: str, name: str):
    if not spark.catalog.tableExists(f"{db}.{name}"):
        return None
    return spark.catalog.getTable(f"{db}.{name}").tableType   # MANAGED / EXTERNAL / VIEW


def _managed(spark, job: Plan) -> dict:
    # Parquet readers hold a whole column chunk of a row group, so small ones also keep a server reading
    # `content` within a modest heap.  The writer checks the size every 100 rows by default, far too
    # rarely for rows of megabytes.  Session settings reach the writer's Hadoop conf.
    spark.conf.set("parquet.block.size", str(ROW_GROUP_BYTES))
    spark.conf.set("parquet.page.size.row.check.min", "2")
    spark.conf.set("parquet.page.row.count.limit", str(PAGE_ROWS))
    # image formats are compressed already: Snappy saved nothing on JPEGs (0.004%) and cost the server
    # ~20% of its JVM time reading them back (BENCHMARKS.md)
    spark.conf.set("spark.sql.parquet.compression.codec", "uncompressed")
    images = read_images(spark, str(job.folder), job.label_from_dir, job.glob)
    files = _file_count(spark, job)
    kind = _table_type(spark, job.db, job.name)
    if kind == "VIEW":
        raise SystemExit(f"{job.table} is a view; choose another table name")
    if kind == "EXTERNAL" and job.append:
        raise SystemExit(f"{job.table} is an external table: nothing to append, it reads its folder; "
                         f"new files show after REFRESH TABLE {job.table}")
    with JobProgress(spark, f"ingest {job.table}", force=job.progress):
        if job.append and kind is not None:
            known = spark.table(job.qualified).select("path")
            new = images.join(known, "path", "left_anti")
            added = new.count()            # only paths: binaryFile does not read the bytes for this
            if added:
                _laid_out(new, files).write.insertInto(job.qualified)
        else:
            # write beside, then swap: the old table stays whole until the new one is complete
            staging = f"`{job.db}`.`_ingest_{job.name}`"
            spark.sql(f"DROP TABLE IF EXISTS {staging}")
            _laid_out(images, files).write.format("parquet").saveAsTable(f"{job.db}._ingest_{job.name}")
            spark.sql(f"DROP TABLE IF EXISTS {job.qualified}")   # an external one keeps its files
            spark.sql(f"ALTER TABLE {staging} RENAME TO {job.qualified}")
            added = None
        rows = spark.table(job.qualified).count()
    added = rows if added is None else added
    return {"table": job.table, "kind": "managed", "added": added, "rows": rows, "partitions": None,
            "summary": f"{job.table}: {added} image(s) written, {rows} row(s) in the table"}


def _file_count(spark, job: Plan) -> int:
    """Output files for the folder's images: one per FILE_BYTES (sizes from the listing, no bytes read)."""
    import math

    total = _image_files(spark, str(job.folder), job.glob).agg({"length": "sum"}).first()[0] or 0
    return max(1, math.ceil(total / FILE_BYTES))


def _laid_out(images, files: int):
    """``images`` in ``files`` files, each sorted by path (see ROW_GROUP_BYTES)."""
    return images.coalesce(files).sortWithinPartitions("path")


# ---- external: a binaryFile table over the folder, nothing copied --------------------------------

def partition_folders(root: Path, columns: tuple) -> dict:
    """{(value, ...): folder} for the sub-folders ``len(columns)`` levels below ``root``.

    A folder named ``col=value`` gives that value (the column must match its level); any other
    name is the value itself.  Hidden folders (``.x``, ``_x``) are skipped, as Spark does.
    """
    found = {(): root}
    for column in columns:
        deeper = {}
        for values, folder in found.items():
            with os.scandir(folder) as entries:
                for entry in entries:
                    if not entry.is_dir() or entry.name.startswith((".", "_")):
                        continue
                    key, eq, value = entry.name.partition("=")
                    if eq and key.lower() != column.lower():
                        raise SystemExit(f"{entry.path}: expected a {column}=... or plain folder at this level")
                    value = value if eq else entry.name
                    if values + (value,) in deeper:
                        raise SystemExit(f"two folders give {column}={value!r} under {folder}")
                    deeper[values + (value,)] = Path(entry.path)
        found = deeper
    return found


def _unescape(text: str) -> str:
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), text)


def _existing_partitions(spark, job: Plan) -> set:
    rows = spark.sql(f"SHOW PARTITIONS {job.qualified}").collect()
    return {tuple(_unescape(part.partition("=")[2]) for part in row[0].split("/")) for row in rows}


def _partition_clause(columns: tuple, values: tuple) -> str:
    return "PARTITION (" + ", ".join(f"`{c}` = {sql_string(v)}" for c, v in zip(columns, values)) + ")"


def _stored_spec(spark, job: Plan):
    rows = spark.sql(f"SHOW TBLPROPERTIES {job.qualified}").collect()
    text = {r[0]: r[1] for r in rows}.get(SPEC_PROPERTY)
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def create_external_sql(job: Plan) -> str:
    """The CREATE TABLE statement of the external table (also what sql/ddl shows)."""
    columns = BINARY_FILE_COLUMNS + "".join(f", `{c}` STRING" for c in job.partition_by)
    options = {} if job.partition_by else {"pathGlobFilter": job.glob,
                                           "recursiveFileLookup": str(job.recursive).lower()}
    parts = [f"CREATE TABLE {job.qualified} ({columns}) USING binaryFile"]
    if options:
        parts.append("OPTIONS (" + ", ".join(f"{k} {sql_string(v)}" for k, v in options.items()) + ")")
    if job.partition_by:
        parts.append("PARTITIONED BY (" + ", ".join(f"`{c}`" for c in job.partition_by) + ")")
    parts.append(f"LOCATION {sql_string(str(job.folder))}")
    parts.append(f"TBLPROPERTIES ({sql_string(SPEC_PROPERTY)} = {sql_string(json.dumps(job.spec, sort_keys=True))})")
    return "\n".join(parts)


def _external(spark, job: Plan) -> dict:
    kind = _table_type(spark, job.db, job.name)
    if kind in ("MANAGED", "VIEW"):
        raise SystemExit(f"{job.table} exists as a {kind.lower()} table; dropping it would delete its data: "
                         f"DROP TABLE {job.table} first, or choose another name")
    wanted = partition_folders(job.folder, job.partition_by) if job.partition_by else {}
    if job.partition_by and not wanted:
        raise SystemExit(f"no partition folders {len(job.partition_by)} level(s) below {job.folder} "
                         f"(expected e.g. {job.folder}/{job.partition_by[0]}=VALUE/ or {job.folder}/VALUE/)")
    if kind is not None and _stored_spec(spark, job) != job.spec:
        spark.sql(f"DROP TABLE {job.qualified}")     # external: only the definition goes
        kind = None
    if kind is None:
        spark.sql(create_external_sql(job))
    added = removed = 0
    if job.partition_by:
        existing = _existing_partitions(spark, job)
        stale = sorted(existing - set(wanted))
        new = [(values, wanted[values]) for values in sorted(set(wanted) - existing)]
        for start in range(0, len(stale), 200):
            clauses = ", ".join(_partition_clause(job.partition_by, v) for v in stale[start:start + 200])
            spark.sql(f"ALTER TABLE {job.qualified} DROP IF EXISTS {clauses}")
        for start in range(0, len(new), 200):
            clauses = " ".join(f"{_partition_clause(job.partition_by, v)} LOCATION {sql_string(str(folder))}"
                               for v, folder in new[start:start + 200])
            spark.sql(f"ALTER TABLE {job.qualified} ADD IF NOT EXISTS {clauses}")
        added, removed = len(new), len(stale)
    spark.sql(f"REFRESH TABLE {job.qualified}")
    with JobProgress(spark, f"count {job.table}", force=job.progress):
        rows = spark.table(job.qualified).count()    # lists files; no bytes are read
    parts = f", {len(wanted)} partition(s) (+{added} -{removed})" if job.partition_by else ""
    return {"table": job.table, "kind": "external", "added": 0, "rows": rows,
            "partitions": len(wanted) if job.partition_by else None,
            "summary": f"{job.table}: external table over {job.folder}{parts}, {rows} file(s), no bytes copied; "
                       f"files added later show after REFRESH TABLE {job.table}"}
