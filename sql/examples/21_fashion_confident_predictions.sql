-- The fine-tuned 'fashion' bundle (EfficientNet-Lite0 features + a head trained with BigDL by
-- `sqlext train`) on held-out Fashion-MNIST images: keep the confident predictions only.
SELECT regexp_extract(path, '[^/]+$', 0)   AS file,
       label                               AS true_label,
       prediction.label                    AS predicted,
       round(prediction.probability, 4)    AS probability,
       prediction.model                    AS model
FROM (SELECT path, label, classify_image(content, 'fashion') AS prediction FROM demo.fashion_val)
WHERE prediction.probability > 0.95
ORDER BY file
LIMIT 10;

-- How many predictions clear the bar, per predicted class.
SELECT prediction.label AS predicted, count(*) AS confident_images
FROM (SELECT classify_image(content, 'fashion') AS prediction FROM demo.fashion_val)
WHERE prediction.probability > 0.95
GROUP BY prediction.label
ORDER BY predicted;
