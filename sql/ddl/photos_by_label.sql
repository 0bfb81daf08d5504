-- An EXTERNAL table partitioned by the folder each image is in, for a tree like
--   /data/images/labelled/cats/a.jpg   /data/images/labelled/drinks/b.png
-- (no `label=` in the folder names, so Spark cannot discover the partitions by itself:
-- each folder is registered with its own LOCATION; nothing is copied or renamed).
-- `sqlext ingest /data/images/labelled --table demo.photos_by_label --external --partition-by label`
-- makes the same, one ADD PARTITION per folder, and re-running it adds new folders.
-- Every file directly in a partition folder is a row (Spark applies no name filter to
-- metastore partitions); a non-image file just gets NULL predictions.
CREATE DATABASE IF NOT EXISTS demo;

DROP TABLE IF EXISTS demo.photos_by_label;  -- external: drops the definition, never the files

CREATE TABLE demo.photos_by_label (
  path             STRING    COMMENT 'file URI',
  modificationTime TIMESTAMP,
  length           BIGINT,
  content          BINARY    COMMENT 'the encoded image bytes',
  label            STRING    COMMENT 'the folder name'
) USING binaryFile
PARTITIONED BY (label)
LOCATION '/data/images/labelled';

ALTER TABLE demo.photos_by_label ADD IF NOT EXISTS
  PARTITION (label = 'cats')   LOCATION '/data/images/labelled/cats'
  PARTITION (label = 'drinks') LOCATION '/data/images/labelled/drinks';

-- New files in these folders: REFRESH TABLE demo.photos_by_label;
-- A new folder: one more ADD PARTITION (or re-run the sqlext ingest command above).
SHOW PARTITIONS demo.photos_by_label;
