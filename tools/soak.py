#!/usr/bin/env python3
"""Kill -9 soak: churn counters (create/start/stop/destroy from several clients) while the
manager is killed with -9 and restarted N times; after each restart check that nothing
acknowledged was lost, nothing runs twice or unowned, and no counter went back.

    .venv/bin/python tools/soak.py --kills 100            # ~5 minutes
    .venv/bin/python tools/soak.py --kills 20 --workers 6 --seed 7

Prints one line per kill and the totals (lost / orphans / doubles / regressions), then every
problem found; exits 1 if there was any. The suite runs a short version
(tests/integration/test_churn.py); this one is for anyone to run for as long as they like.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from component_manager.testing.chaos import churn  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=100, help="how many kill -9s (default 100)")
    parser.add_argument("--workers", type=int, default=3, help="concurrent clients (default 3)")
    parser.add_argument("--names", type=int, default=3, help="instance names per client (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the state directory")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cm-soak-"))
    started = time.monotonic()
    try:
        report = churn(root / "state", args.kills, args.workers, args.names, args.seed)
    finally:
        if args.keep:
            print(f"state kept in {root / 'state'}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{report} in {time.monotonic() - started:.0f}s")
    for problem in report.problems():
        print("  " + problem)
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
