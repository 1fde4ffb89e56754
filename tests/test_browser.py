"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright)."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from tests.real_run import RUN

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.browser

if not Path("/usr/bin/chromium").exists():
    pytest.skip("no /usr/bin/chromium: `apt-get install -y chromium chromium-driver` to run the browser test",
                allow_module_level=True)
if importlib.util.find_spec("playwright") is None:
    pytest.skip("Python Playwright is not installed: `pip install -e .[dev]`", allow_module_level=True)

_spec = importlib.util.spec_from_file_location("dashboard_screenshot", ROOT / "bench" / "screenshot.py")
shot = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shot)

ERROR_SELECTORS = ('[data-testid="stException"]', '[data-testid="stAlertContentError"]')


def test_pareto_page_in_headless_chromium(tmp_path: Path, real_runs: Path) -> None:
    from playwright.sync_api import sync_playwright

    runs = tmp_path / "runs"
    shutil.copytree(real_runs, runs)  # a run made by the real commands (tests/real_run.py)
    log = tmp_path / "streamlit.log"
    with shot.serve_dashboard(runs, log=log) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shot.CHROMIUM, args=shot.CHROMIUM_ARGS)
        try:
            page = shot.open_page(browser, f"{url}/pareto?run={RUN}")
            png = tmp_path / "pareto.png"
            page.screenshot(path=str(png), full_page=True)
            assert png.stat().st_size > 20_000
            for sel in ERROR_SELECTORS:
                assert page.locator(sel).count() == 0, f"{sel} on the Pareto page: {page.locator(sel).first.inner_text()}"
            legend = " ".join(page.locator('[data-testid="stPlotlyChart"] .legend text').all_text_contents())
            assert "Searched Pareto front" in legend and "Uniform grid" in legend
            assert "Best within budget" in page.inner_text("body")

            # The architecture page renders too, with the run still selected.
            page.goto(f"{url}/architecture?run={RUN}", wait_until="domcontentloaded")
            page.wait_for_selector(shot.CHART, timeout=60_000)
            assert page.locator(ERROR_SELECTORS[0]).count() == 0
            page.screenshot(path=str(tmp_path / "architecture.png"), full_page=True)
        finally:
            browser.close()
