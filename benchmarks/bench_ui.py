"""The web page (`cm ui`) on a large realm: N dynamic children (1,000; 100 with --quick), the
page loaded in headless Chromium, timed from navigation until the whole tree is on screen
(every instance's row, its status in colour). Each load is a fresh navigation with a warm
server. Baseline, same run: `cm tree` of the same realm, the whole command (the text view of
the same thing).

Needs Debian's chromium and Playwright's Python package; without them the figure is
reported as skipped, with why.
"""

from __future__ import annotations

import shutil
import subprocess
import time

from _common import ROOT, Api, figure, log, manager, summary, workdir

from component_manager.testing.process import cm_executable

LOADS = 7


def run(cfg) -> list[dict]:
    n = 100 if cfg.quick else 1000
    key, title = "ui_tree", f"`cm ui`: whole tree on screen ({n} instances)"
    chromium = shutil.which("chromium")
    why = "chromium is not installed" if chromium is None else _no_playwright()
    if why:
        return [figure(key, title, "ms", None, [], target="< 1,000 ms", skipped=why)]
    with workdir("cm-bui-") as tmp, manager(str(ROOT / "components" / "realm.cml"), tmp / "s") as m:
        api = Api(m)
        api.create_many("/", "workers", [f"w{i}" for i in range(n)], "counter/counter.cml")
        api.close()
        loads = _page_loads(m.state_dir, chromium, n + 4)
        trees = [_timed_cm_tree(m.state_dir) for _ in range(LOADS)]
    log(f"ui n={n}: page {min(loads) * 1e3:.0f} ms best, cm tree {min(trees) * 1e3:.0f} ms best")
    return [figure(key, title, "ms", summary(loads, 1e3),
                   [{"name": f"`cm tree`, whole command ({n})", **summary(trees, 1e3)}], target="< 1,000 ms")]


def _no_playwright() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is not installed"
    return ""


def _page_loads(state_dir, chromium: str, rows: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    from component_manager.testing.ui import UiProcess

    with UiProcess(state_dir) as ui, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        last_row = page.locator(".node").nth(rows - 1)
        times = []
        for _ in range(LOADS):
            t0 = time.perf_counter()
            page.goto(ui.url)
            last_row.wait_for(timeout=60_000)
            times.append(time.perf_counter() - t0)
        browser.close()
    return times


def _timed_cm_tree(state_dir) -> float:
    t0 = time.perf_counter()
    subprocess.run([*cm_executable(), "--state-dir", str(state_dir), "tree"],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0
