"""Evaluation and benchmarks: `qa eval` (sets, run, metrics, summary, report) and `qa bench`."""
