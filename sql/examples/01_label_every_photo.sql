-- Top-1 label of every photo, with the default model (ImageNet EfficientNet-Lite0).
SELECT regexp_extract(path, '[^/]+$', 0) AS file,
       image_label(content)              AS label
FROM demo.photos
ORDER BY file;
