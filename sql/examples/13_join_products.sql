-- Join predictions to another table: a small product catalogue keyed by ImageNet label.
-- Re-runnable: the catalogue is dropped and re-created.
CREATE DATABASE IF NOT EXISTS demo;
DROP TABLE IF EXISTS demo.products;
CREATE TABLE demo.products (
  label   STRING        COMMENT 'an ImageNet label, as image_label() returns it',
  product STRING,
  price   DECIMAL(8, 2)
) USING parquet;
INSERT INTO demo.products VALUES
  ('espresso',         'Espresso beans, 1 kg',  18.90),
  ('tiger cat',        'Cat food, 2 kg',        12.50),
  ('tabby, tabby cat', 'Cat food, 2 kg',        12.50),
  ('Egyptian cat',     'Cat food, 2 kg',        12.50),
  ('daisy',            'Daisy seeds',            3.20),
  ('missile',          'Model rocket kit',      49.00),
  ('space shuttle',    'Model rocket kit',      49.00);

-- Which product goes with each photo (photos the catalogue has nothing for drop out):
SELECT photo.file, photo.label, products.product, products.price
FROM (SELECT regexp_extract(path, '[^/]+$', 0) AS file, image_label(content) AS label
      FROM demo.photos) AS photo
JOIN demo.products ON products.label = photo.label
ORDER BY photo.file;

-- ... and the photos with no product yet:
SELECT regexp_extract(path, '[^/]+$', 0) AS file, image_label(content) AS label
FROM demo.photos
LEFT ANTI JOIN demo.products ON products.label = image_label(photos.content)
ORDER BY file;
