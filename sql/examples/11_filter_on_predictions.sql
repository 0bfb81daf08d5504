-- Filter on what the model sees.  The functions work anywhere an expression does, WHERE included.

-- Only the photos the model is at least 90% sure about:
SELECT regexp_extract(path, '[^/]+$', 0)              AS file,
       classify_image(content).label                  AS label,
       round(classify_image(content).probability, 3)  AS probability
FROM demo.photos
WHERE classify_image(content).probability > 0.9
ORDER BY file;

-- Find the cats, whatever kind ImageNet calls them:
SELECT regexp_extract(path, '[^/]+$', 0) AS file,
       image_label(content)              AS label
FROM demo.photos
WHERE image_label(content) IN ('tabby, tabby cat', 'tiger cat', 'Persian cat', 'Siamese cat, Siamese',
                               'Egyptian cat')
ORDER BY file;
