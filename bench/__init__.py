"""`make bench`: sqlext's benchmarks (see bench/run_all.py); results go to BENCHMARKS.md."""
