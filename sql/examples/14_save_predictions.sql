-- Keep the predictions in a table (CREATE TABLE ... AS SELECT): later queries, dashboards and
-- joins read them without running the model again.  Re-runnable: the table is re-created.
CREATE DATABASE IF NOT EXISTS demo;
DROP TABLE IF EXISTS demo.photo_predictions;
CREATE TABLE demo.photo_predictions USING parquet AS
SELECT path,
       prediction.label,
       prediction.probability,
       prediction.model,
       current_timestamp() AS predicted_at
FROM (SELECT path, classify_image(content) AS prediction FROM demo.photos);

SELECT count(*) AS predictions, count(DISTINCT model) AS models, min(model) AS model
FROM demo.photo_predictions;

SELECT regexp_extract(path, '[^/]+$', 0) AS file, label, round(probability, 3) AS probability
FROM demo.photo_predictions
ORDER BY probability DESC
LIMIT 3;
