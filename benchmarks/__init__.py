"""Benchmarks: figures against baselines measured in the same run (``python benchmarks/run.py``)."""
