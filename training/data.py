"""Labelled images for training: a folder with one sub-folder per class, or a Hive image table.

Every reader returns a DataFrame ``path STRING, label STRING, content BINARY``; bad input
(empty folder, one class, missing table or label column) raises SystemExit with the reason.
"""
import re
from pathlib import Path

from sqlext.ingest import IMAGE_GLOB, parse_table, read_images

# exactly the extensions Spark's reader takes (its glob is case-sensitive: .PNG yes, .Png no)
IMAGE_EXTENSIONS = tuple("." + ext for ext in re.search(r"\{(.*)\}", IMAGE_GLOB).group(1).split(","))


def _is_hidden(path: Path) -> bool:
    return path.name.startswith((".", "_"))  # Spark's file listing skips these names too


def scan_folder(folder) -> dict:
    """Count image files per class sub-folder of ``folder`` (on the driver, before Spark starts).

    Returns ``{class name: image count}`` for the classes that hold images.  Raises SystemExit for a
    missing or empty folder and for fewer than two classes.
    """
    root = Path(folder)
    if not root.is_dir():
        raise SystemExit(f"error: no such folder: {folder}")
    counts = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not _is_hidden(p)):
        n = sum(1 for f in sub.rglob("*") if f.is_file() and f.suffix in IMAGE_EXTENSIONS
                and not any(part.startswith((".", "_")) for part in f.relative_to(sub).parts))
        if n:
            counts[sub.name] = n
    if not counts:
        loose = sum(1 for f in root.iterdir() if f.is_file() and f.suffix in IMAGE_EXTENSIONS)
        hint = f" ({loose} image(s) lie directly in it: move them into class folders)" if loose else ""
        raise SystemExit(f"error: {folder} holds no images in class sub-folders{hint}; "
                         "expected FOLDER/<class>/<image>, one sub-folder per class")
    return counts


def require_classes(counts: dict, where: str) -> None:
    if len(counts) < 2:
        only = ", ".join(f"{label!r} ({n} images)" for label, n in counts.items()) or "none"
        raise SystemExit(f"error: {where} has a single class ({only}); a classifier needs at least two "
                         "classes, one sub-folder (or label value) per class")


def read_folder(spark, folder):
    """Images under ``folder/<class>/...`` with label = the class folder name (first level)."""
    from pyspark.sql import functions as F

    root = str(Path(folder).resolve())
    images = read_images(spark, root, label_from_dir=False)
    label = F.regexp_extract("path", r"\Q" + root + r"\E/([^/]+)/", 1)  # \Q..\E: the root taken literally
    return images.select("path", label.alias("label"), "content").where(F.col("label") != "")


def read_table(spark, table: str, label_col: str = "label"):
    """Rows of an image table (``sqlext ingest``) with a non-NULL label in ``label_col``."""
    from pyspark.sql import functions as F

    db, name = parse_table(table)
    if not spark.catalog.databaseExists(db) or not spark.catalog.tableExists(f"{db}.{name}"):
        raise SystemExit(f"error: no such table: {db}.{name} (create it with `sqlext ingest FOLDER --table "
                         f"{db}.{name} --label-from-dir`)")
    frame = spark.table(f"`{db}`.`{name}`")
    columns = {field.name.lower(): field for field in frame.schema.fields}
    if label_col.lower() not in columns:
        raise SystemExit(f"error: table {db}.{name} has no label column {label_col!r} (columns: "
                         f"{', '.join(frame.columns)}); name it with --label-col")
    content = columns.get("content")
    if content is None or content.dataType.typeName() != "binary":
        raise SystemExit(f"error: table {db}.{name} needs a BINARY column 'content' with the encoded images "
                         f"(columns: {', '.join(frame.columns)})")
    path = F.col("path").cast("string") if "path" in columns else F.xxhash64("content").cast("string")
    return frame.select(path.alias("path"), F.col(label_col).cast("string").alias("label"), F.col("content"))


def class_counts(frame) -> dict:
    """``{label: rows}`` for the non-NULL labels of ``frame`` (one Spark job, no image bytes read)."""
    rows = frame.where("label IS NOT NULL").groupBy("label").count().collect()
    return {row["label"]: row["count"] for row in sorted(rows, key=lambda r: r["label"])}


def read_source(spark, location: str, label_col: str = "label"):
    """A folder (if ``location`` is a directory) or a ``DB.TABLE``."""
    if Path(location).is_dir():
        return read_folder(spark, location)
    return read_table(spark, location, label_col)


def is_table(location: str) -> bool:
    return not Path(location).is_dir()


def split(frame, fraction: float, seed: int):
    """Add ``split`` = 'train' | 'val': per class, about ``fraction`` of the rows (at least one, never
    all of them) go to validation, chosen by a seeded hash of the path, so reruns agree.

    Only (path, label) pairs are ranked; the assignment is broadcast back, so image bytes never shuffle.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_class = Window.partitionBy("label")
    keys = frame.select("path", "label").distinct()
    ranked = (keys.withColumn("_rank", F.row_number().over(by_class.orderBy(F.xxhash64("path", F.lit(seed)))))
              .withColumn("_n", F.count(F.lit(1)).over(by_class)))
    n_val = F.least(F.greatest(F.round(F.col("_n") * fraction), F.lit(1)), F.col("_n") - 1)
    assignment = ranked.select("path", "label", F.when(F.col("_rank") <= n_val, "val").otherwise("train")
                               .alias("split"))
    return frame.join(F.broadcast(assignment), ["path", "label"])
