-- An EXTERNAL table partitioned by day, for a tree in Spark's own key=value layout:
--   /data/images/daily/ds=2024-01-01/a.jpg   /data/images/daily/ds=2024-01-02/b.jpg
-- `sqlext ingest /data/images/daily --table demo.photos_by_day --external --partition-by ds`
-- makes the same.  Partition values are strings: CAST(ds AS DATE) where a date is needed.
CREATE DATABASE IF NOT EXISTS demo;

DROP TABLE IF EXISTS demo.photos_by_day;  -- external: drops the definition, never the files

CREATE TABLE demo.photos_by_day (
  path             STRING    COMMENT 'file URI',
  modificationTime TIMESTAMP,
  length           BIGINT,
  content          BINARY    COMMENT 'the encoded image bytes',
  ds               STRING    COMMENT 'the day folder, yyyy-MM-dd'
) USING binaryFile
PARTITIONED BY (ds)
LOCATION '/data/images/daily';

-- Registers every ds=... folder found under the location; run it again when a new day arrives.
-- New files inside known days show after REFRESH TABLE demo.photos_by_day.
MSCK REPAIR TABLE demo.photos_by_day;

SHOW PARTITIONS demo.photos_by_day;
