-- The struct function gives label, probability and the exact model version;
-- filter on the probability to keep only confident predictions.
SELECT regexp_extract(path, '[^/]+$', 0)               AS file,
       classify_image(content).label                   AS label,
       round(classify_image(content).probability, 3)   AS probability,
       classify_image(content, 'imagenet').model       AS model
FROM demo.photos
WHERE classify_image(content).probability > 0.5
ORDER BY probability DESC;
