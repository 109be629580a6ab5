"""Programs the benchmarks run: SDK components and the plain baselines they are compared with."""
