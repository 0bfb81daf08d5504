-- An EXTERNAL image table over a folder that stays where it is: no bytes are copied.
-- `sqlext ingest /data/images/photos --table demo.photos_external --external --recursive` makes the same.
-- Spark's binaryFile source gives one row per file: path, modificationTime, length, content.
CREATE DATABASE IF NOT EXISTS demo;

DROP TABLE IF EXISTS demo.photos_external;  -- external: drops the definition, never the files

CREATE TABLE demo.photos_external (
  path             STRING    COMMENT 'file URI',
  modificationTime TIMESTAMP,
  length           BIGINT,
  content          BINARY    COMMENT 'the encoded image bytes'
) USING binaryFile
OPTIONS (
  pathGlobFilter      '*.{jpg,jpeg,png,JPG,JPEG,PNG}',  -- file names only (not folders)
  recursiveFileLookup 'true'                          -- sub-folders too
)
LOCATION '/data/images/photos';

-- Files copied into the folder later: this session sees them after
REFRESH TABLE demo.photos_external;
