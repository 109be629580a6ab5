"""Manifest load and compile times, against json.loads of the same manifest in the same run.

    .venv/bin/python benchmarks/manifest_bench.py [--iterations N]

Load = decode + verify (sha256, version, canonical bytes) of the compiled echo_server.cm;
the target is a median under 50 us. Figures are medians and p99 in microseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "components" / "echo" / "echo_server.cml"


def measure(fn, iterations: int) -> tuple[float, float]:
    for _ in range(min(200, iterations)):
        fn()  # warm up
    samples = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    from component_manager.manifest import compile_file, decode, encode

    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=20000)
    n = parser.parse_args().iterations
    decl = compile_file(ECHO)
    data = encode(decl)
    as_json = json.dumps({"program": {"runner": "python", "module": "components.echo.server"},
                          "capabilities": [{"protocol": "echo.Echo"}],
                          "use": [{"storage": "data", "path": "/data"}],
                          "expose": [{"protocol": "echo.Echo", "from": "self"}],
                          "config": {"greeting": {"type": "string", "max_size": 64, "default": "hello"}}})
    rows = [
        ("baseline json.loads", measure(lambda: json.loads(as_json), n)),
        ("load .cm (decode+verify)", measure(lambda: decode(data, "echo_server.cm"), n)),
        ("compile .cml", measure(lambda: compile_file(ECHO), max(n // 20, 100))),
    ]
    base = rows[0][1][0]
    print(f"echo_server.cm: {len(data)} bytes; {n} iterations")
    for name, (median, p99) in rows:
        print(f"{name:28s} median {median:8.1f} us   p99 {p99:8.1f} us   ({median / base:6.1f}x baseline)")


if __name__ == "__main__":
    main()
