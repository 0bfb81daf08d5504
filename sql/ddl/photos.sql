-- The image table `sqlext ingest DIR --table demo.photos` creates (shown here for reference):
-- one row per image file, the encoded bytes in `content`.
CREATE DATABASE IF NOT EXISTS demo;

CREATE TABLE IF NOT EXISTS demo.photos (
  path    STRING COMMENT 'where the image was read from',
  label   STRING COMMENT 'known label (the parent folder with --label-from-dir), else NULL',
  content BINARY COMMENT 'the encoded image bytes (JPEG, PNG, ...)'
) USING parquet;
