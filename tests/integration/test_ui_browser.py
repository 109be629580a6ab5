"""The web page (`cm ui`) in a real headless Chromium, driven as a person would: the example
realm, /counter stopped; start it, see it running with its count= line and the event; stop it;
a refused action shows the manager's message; a request without the token is refused.

Needs Debian's ``chromium`` and Playwright's Python package (driving that Chromium through
``executable_path``; Playwright's own browser downloads are not used). Skipped, with the
reason, where either is missing. The screenshot is left in ``.artifacts/ui.png``.
"""

import shutil
from pathlib import Path

import pytest

from component_manager.testing.process import ManagerProcess
from component_manager.testing.ui import UiProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / ".artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WAIT_MS = 20_000  # generous: two cores shared with other test runs


@pytest.fixture
def browser():
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    pytest.importorskip("starlette", reason="the ui extra (starlette, uvicorn) is not installed")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def test_the_page_drives_the_example_realm(manager_dir, browser):
    from playwright.sync_api import expect

    with ManagerProcess(manager_dir) as manager, UiProcess(manager.state_dir) as ui:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(WAIT_MS)
        expect.set_options(timeout=WAIT_MS)
        page.goto(ui.url)
        counter = page.locator(".node[data-m='/counter']")
        expect(counter.locator(".pill")).to_have_text("stopped")
        expect(page.locator("#live")).to_have_text("live")

        counter.click()
        expect(page.locator(".title h2")).to_have_text("/counter")
        page.click(".actions button[data-verb=start]")
        expect(counter.locator(".pill")).to_have_text("running")
        expect(page.locator(".title .pill")).to_have_text("running")
        expect(page.locator("#log")).to_contain_text("count=1")
        started = page.locator("#events tr[data-type=started]", has_text="/counter").first
        expect(started).to_contain_text("requested via the API")
        assert manager.show("/counter")["execution_state"] == "running"

        page.fill("#route-cap", "data")
        page.click("#route-go")
        expect(page.locator("#route-out")).to_contain_text("ok")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ui.png"))
        print(f"screenshot: {ARTIFACTS / 'ui.png'}")

        page.click(".actions button[data-verb=stop]")
        expect(counter.locator(".pill")).to_have_text("stopped")
        expect(page.locator("#events tr[data-type=stopped]", has_text="/counter").first).to_contain_text("requested")

        page.once("dialog", lambda dialog: dialog.accept())
        page.click(".actions button[data-verb=destroy]")
        expect(page.locator("#banner")).to_be_visible()
        expect(page.locator("#banner-text")).to_contain_text("only dynamic children can be destroyed")

        page.click(".tabs button[data-tab=graph]")
        if shutil.which("dot"):
            expect(page.locator("#graph svg g.node")).to_have_count(len(manager.cm_json("list")))

        refused = page.request.get(ui.base + "/api/instances")
        assert refused.status == 401
        page.goto(ui.base + "/")
        assert "needs the token" in page.content()


def test_the_page_notices_the_manager_leave_and_come_back(manager_dir, browser):
    from playwright.sync_api import expect

    with ManagerProcess(manager_dir) as manager, UiProcess(manager.state_dir) as ui:
        page = browser.new_page()
        page.set_default_timeout(WAIT_MS)
        expect.set_options(timeout=WAIT_MS)
        page.goto(ui.url)
        expect(page.locator("#live")).to_have_text("live")
        assert manager.terminate() == 0
        expect(page.locator("#live")).not_to_have_text("live")
        manager.start()
        expect(page.locator("#live")).to_have_text("live")
        page.click(".node[data-m='/counter']")
        page.click(".actions button[data-verb=start]")
        expect(page.locator(".node[data-m='/counter'] .pill")).to_have_text("running")
        expect(page.locator("#events tr[data-type=started]", has_text="/counter").first).to_be_visible()
