-- A MANAGED image table: the bytes are copied into Parquet files under the warehouse.
-- `sqlext ingest DIR --table demo.photos` creates and fills it (re-running replaces the rows with
-- exactly DIR's images; `--append` adds only files not yet in the table; `--label-from-dir`
-- fills `label` with each image's folder name).  Shown here for reference:
CREATE DATABASE IF NOT EXISTS demo;

CREATE TABLE IF NOT EXISTS demo.photos (
  path    STRING COMMENT 'where the image was read from',
  label   STRING COMMENT 'known label (the parent folder with --label-from-dir), else NULL',
  content BINARY COMMENT 'the encoded image bytes (JPEG, PNG, ...)'
) USING parquet;
