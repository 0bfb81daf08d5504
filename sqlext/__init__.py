"""sqlext: a fine-tuned image classifier behind Spark SQL functions."""

__version__ = "0.1.0"
