"""Run every benchmark figure, print one table, write benchmarks/results/latest.json.

    .venv/bin/python benchmarks/run.py            # the full suite (N = 50 and 200, 10,000 instances)
    .venv/bin/python benchmarks/run.py --quick    # a smoke run: small N, a minute or two
    .venv/bin/python benchmarks/run.py --full     # scale with 100,000 instances
    .venv/bin/python benchmarks/run.py --only lazy,scale

Every baseline is measured in the same run as the figure it is compared with (the machines
are noisy: compare within one run). ``ratio`` is our median / the baseline's median (below
1: we are faster). A figure whose script failed is kept in the JSON with its error, so one
broken figure does not hide the others; the exit code is then 1. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402  (sets PYTHONPATH for the programs the manager starts)

SUITES = {  # name -> (module, the figure keys it produces; for the error records)
    "lazy": ("bench_lazy", ["cold_lazy_start", "warm_connect", "call_overhead", "state_write"]),
    "startstop": ("bench_startstop", None),
    "scale": ("bench_scale", ["scale_create", "scale_rss", "scale_list", "scale_restart"]),
    "shutdown": ("bench_shutdown", ["shutdown_inproc", "shutdown_process"]),
    "govern": ("bench_govern", ["reload_one", "pause_resume", "evict_start"]),
    "policies": ("bench_policies", ["crash_restart", "probe_cost"]),
    "ui": ("bench_ui", ["ui_tree"]),
    "snapshots": ("bench_snapshots", ["snapshot_1mb", "snapshot_10mb"]),  # + snapshot_50mb outside --quick
    "ray": ("bench_ray", ["ray_cold_start", "ray_storage_move", "ray_manager_cost"]),  # skipped without Ray
}


def expected_keys(quick: bool) -> list[str]:
    ns = [10] if quick else [50, 200]
    keys = []
    for name, (_module, fixed) in SUITES.items():
        keys += fixed if fixed else [f"{v}_{n}" for n in ns for v in ("start", "stop")] + ["cm_show", "cm_list"]
    return keys


def fmt(value, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "bytes":
        return f"{value:,.0f} B"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(figures: list[dict]) -> str:
    rows = [("figure", "unit", "ours median", "ours p99", "baseline", "baseline median", "ratio", "target")]
    for f in figures:
        if "error" in f or f.get("skipped"):
            rows.append((f["key"], "", "ERROR" if "error" in f else "skipped", "",
                         (f.get("error") or f["skipped"])[:60], "", "", ""))
            continue
        ours = f["ours"] or {}
        first = True
        for b in f["baselines"] or [{"name": "(target only)", "median": None, "ratio": None}]:
            base = fmt(b.get("median")) if b.get("available", True) and b.get("median") is not None else (
                "not available" if b.get("why") else "-")
            rows.append((f["key"] if first else "", f["unit"] if first else "",
                         fmt(ours.get("median"), f["unit"]) if first else "",
                         fmt(ours.get("p99"), f["unit"]) if first else "",
                         b["name"], base, fmt(b.get("ratio")) + ("x" if b.get("ratio") else ""),
                         f["target"] if first else ""))
            first = False
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small N: a smoke run")
    parser.add_argument("--full", action="store_true", help="scale with 100,000 instances")
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(SUITES))
    parser.add_argument("--out", default=str(_common.BENCH / "results" / "latest.json"))
    cfg = parser.parse_args(argv)
    only = [s for s in cfg.only.split(",") if s] or list(SUITES)
    os.chdir(_common.ROOT)

    started = time.time()
    figures = []
    failed = False
    for name in only:
        module_name, fixed = SUITES[name]
        _common.log(f"suite {name}")
        t0 = time.perf_counter()
        try:
            figures += importlib.import_module(module_name).run(cfg)
        except Exception as e:
            failed = True
            traceback.print_exc()
            keys = fixed or [k for k in expected_keys(cfg.quick) if k.startswith(("start_", "stop_", "cm_"))]
            figures += [{"key": k, "error": f"{type(e).__name__}: {e}"} for k in keys]
        _common.log(f"suite {name}: {time.perf_counter() - t0:.1f} s")

    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": time.time() - started,
        "mode": "quick" if cfg.quick else ("full" if cfg.full else "default"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "figures": figures,
    }
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(table(figures))
    print(f"\n{len(figures)} figures in {result['duration_s']:.0f} s; JSON: {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
