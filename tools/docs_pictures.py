"""Remake docs/ui.png (the web page) and docs/realm.svg (`cm graph` of the example realm).

    .venv/bin/python tools/docs_pictures.py

Needs Graphviz's dot, Debian's chromium and Playwright's Python package (dev extras). Runs a
throwaway manager with the example realm, gives it a little history (the client has run
through the route, the counter runs, one dynamic worker runs and another has failed),
then draws it.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from component_manager.testing.process import ManagerProcess  # noqa: E402
from component_manager.testing.ui import UiProcess  # noqa: E402


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="cm-pictures-"))
    try:
        package = work / "pkg"  # the example realm, and beside it a component that fails
        shutil.copytree(ROOT / "components", package / "components", ignore=shutil.ignore_patterns("__pycache__"))
        (package / "components" / "broken").mkdir()
        for name in ("exits_1.cml", "exits_1.py"):
            shutil.copy(ROOT / "tests" / "integration" / "components" / name, package / "components" / "broken" / name)
        with ManagerProcess(work / "state", root=str(package / "components" / "realm.cml")) as manager:
            with manager.events() as events:
                manager.cm("start", "/echo_client")
                events.wait_for(type="stopped", moniker="/echo_client")
            manager.cm("start", "/counter")
            manager.cm("run", "/workers:c1", "counter/counter.cml")
            svg = manager.cm("graph", "--routes", "--format", "svg").stdout
            (ROOT / "docs" / "realm.svg").write_text(svg)
            # for the page only: a worker that fails (exits 1), to show how failure looks
            with manager.events() as events:
                manager.cm("run", "/workers:broken", "broken/exits_1.cml")
                events.wait_for(type="stopped", moniker="/workers:broken")
            with UiProcess(manager.state_dir) as ui:
                screenshot(ui.url, ROOT / "docs" / "ui.png")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("wrote docs/realm.svg and docs/ui.png")
    return 0


def screenshot(url: str, path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1360, "height": 860}, device_scale_factor=1)
        page.goto(url)
        page.click(".node[data-m='/counter']")
        expect(page.locator("#log")).to_contain_text("count=")
        page.fill("#route-cap", "data")
        page.click("#route-go")
        expect(page.locator("#route-out")).to_contain_text("ok")
        page.screenshot(path=str(path))
        browser.close()


if __name__ == "__main__":
    sys.exit(main())
