"""The benchmark suite runs end to end (`benchmarks/run.py --quick`) and reports every
figure. No timing is asserted: the machines are too noisy, and the figures are for people
(docs/performance.md). supervisord and circus may be "not available" (no network)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_quick_benchmark_run_reports_every_figure(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from run import expected_keys
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    out = tmp_path / "quick.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=880)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    data = json.loads(out.read_text())
    figures = {f["key"]: f for f in data["figures"]}
    assert sorted(figures) == sorted(expected_keys(quick=True))
    for key, f in figures.items():
        assert "error" not in f, (key, f.get("error"))
        if f.get("skipped"):  # a figure that needs what this machine lacks (chromium) says why
            continue
        assert f["ours"]["median"] is not None and f["ours"]["median"] > 0, key
        for baseline in f["baselines"]:
            assert baseline.get("median") is not None or baseline.get("why"), (key, baseline)
    assert "ours median" in result.stdout  # the table was printed
