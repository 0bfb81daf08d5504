-- Accuracy computed in SQL: the predictions joined back to the labelled table on path,
-- per class and over all classes (the ROLLUP row).
WITH predictions AS (
  SELECT path, image_label(content, 'fashion') AS predicted
  FROM demo.fashion_val
),
scored AS (
  SELECT coalesce(truth.label, 'all classes')                                            AS class,
         grouping(truth.label)                                                           AS is_total,
         count(*)                                                                        AS images,
         sum(CASE WHEN predictions.predicted = truth.label THEN 1 ELSE 0 END)            AS correct,
         round(avg(CASE WHEN predictions.predicted = truth.label THEN 1.0 ELSE 0.0 END), 4) AS accuracy
  FROM predictions
  JOIN demo.fashion_val AS truth ON predictions.path = truth.path
  GROUP BY ROLLUP (truth.label)
)
SELECT class, images, correct, accuracy
FROM scored
ORDER BY is_total, class;
