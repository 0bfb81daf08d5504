"""`sqlext ingest`: a folder of images -> a managed Hive table (Parquet) of path, label, content.

Files are read by Spark's binaryFile source on the executors and written by Spark,
so nothing is collected on the driver.  Without --append the table is replaced
with exactly the folder's images (re-running is idempotent); with --append only
paths not already in the table are added.
"""
import re

IMAGE_GLOB = "*.{jpg,jpeg,JPG,JPEG,png,PNG,bmp,BMP,gif,GIF,webp,WEBP,tif,tiff,TIF,TIFF}"
_TABLE = re.compile(r"^(?:([A-Za-z_][A-Za-z0-9_]*)\.)?([A-Za-z_][A-Za-z0-9_]*)$")


def parse_table(name: str) -> tuple:
    match = _TABLE.match(name or "")
    if not match:
        raise SystemExit(f"invalid table name {name!r}: use DB.TABLE with letters, digits and '_'")
    return match.group(1) or "default", match.group(2)


def read_images(spark, folder: str, label_from_dir: bool, glob: str = IMAGE_GLOB):
    from pyspark.sql import functions as F

    frame = (spark.read.format("binaryFile")
             .option("recursiveFileLookup", "true")
             .option("pathGlobFilter", glob)
             .load(folder))
    label = F.regexp_extract("path", r"/([^/]+)/[^/]+$", 1) if label_from_dir else F.lit(None).cast("string")
    return frame.select("path", label.alias("label"), "content")


def ingest(spark, folder: str, table: str, label_from_dir: bool = False, append: bool = False) -> dict:
    """Write the images under ``folder`` into ``table``; return counts of what happened."""
    from pathlib import Path

    db, name = parse_table(table)
    root = Path(folder)
    if not root.is_dir():
        raise SystemExit(f"no such folder: {folder}")
    images = read_images(spark, str(root.resolve()), label_from_dir)
    qualified = f"`{db}`.`{name}`"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{db}`")
    exists = spark.catalog.tableExists(name, db)
    if append and exists:
        known = spark.table(qualified).select("path")
        new = images.join(known, "path", "left_anti")
        added = new.count()
        new.write.insertInto(qualified)
    else:
        staging = f"`{db}`.`_ingest_{name}`"
        spark.sql(f"DROP TABLE IF EXISTS {staging}")
        images.write.format("parquet").saveAsTable(staging.replace("`", ""))
        spark.sql(f"DROP TABLE IF EXISTS {qualified}")
        spark.sql(f"ALTER TABLE {staging} RENAME TO {qualified}")
        added = spark.table(qualified).count()
    total = spark.table(qualified).count()
    return {"table": f"{db}.{name}", "added": added, "rows": total}
