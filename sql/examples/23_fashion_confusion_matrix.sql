-- The confusion matrix in SQL (rows: true class, columns: predicted class), and the images
-- the model got wrong, with how sure it was.
SELECT truth.label                                                       AS true_label,
       sum(CASE WHEN predictions.predicted = 'sandal' THEN 1 ELSE 0 END)  AS predicted_sandal,
       sum(CASE WHEN predictions.predicted = 'sneaker' THEN 1 ELSE 0 END) AS predicted_sneaker
FROM (SELECT path, image_label(content, 'fashion') AS predicted FROM demo.fashion_val) AS predictions
JOIN demo.fashion_val AS truth ON predictions.path = truth.path
GROUP BY truth.label
ORDER BY true_label;

SELECT regexp_extract(path, '[^/]+$', 0)            AS file,
       label                                        AS true_label,
       prediction.label                             AS predicted,
       round(prediction.probability, 4)             AS probability
FROM (SELECT path, label, classify_image(content, 'fashion') AS prediction FROM demo.fashion_val)
WHERE prediction.label <> label
ORDER BY probability DESC, file;
