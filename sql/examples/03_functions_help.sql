-- The functions document themselves.
SHOW FUNCTIONS LIKE '*image*';
DESCRIBE FUNCTION image_label;
