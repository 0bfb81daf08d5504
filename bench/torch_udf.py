"""The usual way, for comparison: a row-at-a-time Python UDF running the PyTorch model in fp32 eager mode.

``python -m bench.torch_udf --parquet DIR --backbone NAME [--weights FILE] --runs 3`` starts its own
local SparkSession (same master as the server), reads the benchmark table's Parquet files and times
``count(torch_label(content))``; prints one JSON line.  A warm-up run loads torch and the
model in each Python worker on 8 images and is not counted, as the server's runs are measured warm too.
"""
import argparse
import json
import os
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--parquet", required=True)
    ap.add_argument("--backbone", required=True)
    ap.add_argument("--weights")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--master", default="local[2]")
    args = ap.parse_args(argv)

    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # 6g: a row-at-a-time UDF pickles 100 rows per batch in the JVM (300+ MB of 12 MP photos); with 2g the
    # JVM's writer thread ran out of heap and the query hung (JVM and worker both waiting to read)
    spark = (SparkSession.builder.master(args.master).appName("bench-torch-udf")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.driver.memory", "6g").config("spark.python.worker.reuse", "true")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    backbone, weights = args.backbone, args.weights

    @F.udf("string")
    def torch_label(content):
        from bench import torch_model

        return torch_model.label(content, backbone, weights)

    frame = spark.read.parquet(args.parquet)
    # warm-up: two tasks at once, so both Python workers import torch and load the model
    frame.limit(8).repartition(2).select(F.count(torch_label("content"))).collect()
    times = []
    count = None
    for _ in range(args.runs):
        # a new DataFrame per run: collecting the same one again would reuse its shuffle output and skip the UDF
        query = spark.read.parquet(args.parquet).select(F.count(torch_label("content")))
        started = time.perf_counter()
        count = query.collect()[0][0]
        times.append(time.perf_counter() - started)
    spark.stop()
    print(json.dumps({"images": count, "seconds": times, "images_per_s": [count / t for t in times]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
