-- The fine-tuned 'fashion' bundle (EfficientNet-Lite0 features + a head trained with BigDL by
-- `sqlext train`) on held-out Fashion-MNIST images: keep the confident predictions only.
SELECT regexp_extract(path, '[^/]+$', 0)                      AS file,
       label                                                  AS true_label,
       classify_image(content, 'fashion').label               AS predicted,
       round(classify_image(content, 'fashion').probability, 4) AS probability,
       classify_image(content, 'fashion').model               AS model
FROM demo.fashion_val
WHERE classify_image(content, 'fashion').probability > 0.95
ORDER BY probability DESC, file
LIMIT 10;
