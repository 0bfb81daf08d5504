-- Aggregate over predictions: how many photos per label, and how sure the model was.
SELECT image_label(content)                                  AS label,
       count(*)                                              AS photos,
       round(avg(classify_image(content).probability), 3)    AS avg_probability
FROM demo.photos
GROUP BY image_label(content)
ORDER BY photos DESC, label;

-- The same photos in two confidence bands.
SELECT CASE WHEN classify_image(content).probability >= 0.5 THEN 'confident' ELSE 'unsure' END AS confidence,
       count(*)                                                                                AS photos
FROM demo.photos
GROUP BY 1
ORDER BY confidence;
