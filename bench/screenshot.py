"""Screenshot a dashboard page in headless Chromium: `python -m bench.screenshot --runs-dir X --run NAME --out F`.

Starts `streamlit run app/main.py` on a free loopback port, opens the page in Debian's Chromium through
Playwright (`executable_path=/usr/bin/chromium`, no browser download), waits for the plotly chart and
saves a PNG. Also used by tests/test_browser.py (`serve_dashboard`, `open_page`).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CHART = '[data-testid="stPlotlyChart"] .js-plotly-plot .main-svg'


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_dashboard(runs_dir: str | Path, *, port: int | None = None, timeout_s: float = 60.0,
                    log: Path | None = None) -> Iterator[str]:
    """Run the dashboard against `runs_dir` and yield its base URL; stops the server on exit."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--", "--runs-dir", str(runs_dir)]
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {proc.returncode} (see {log})")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise TimeoutError(f"streamlit did not answer on {url} within {timeout_s:.0f} s")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            out.close()


def open_page(browser, url: str, *, width: int = 1400, height: int = 1000, timeout_ms: int = 60_000,
              selector: str = CHART):
    """Open `url` in a new page, wait for `selector` (default: a rendered plotly chart), return the page."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
    page.wait_for_selector(selector, timeout=timeout_ms)
    page.wait_for_timeout(1500)  # let plotly finish its transitions and the text labels settle
    return page


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs-dir", required=True, help="folder holding run directories")
    ap.add_argument("--run", required=True, help="run folder name to show")
    ap.add_argument("--out", default="docs/dashboard_pareto.png", help="PNG to write")
    ap.add_argument("--page", default="pareto", help="page: runs, pareto, architecture, search_progress, export")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=1250)
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with serve_dashboard(args.runs_dir) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        path = "" if args.page == "runs" else args.page  # the Runs page is the default page, served at /
        page = open_page(browser, f"{url}/{path}?run={args.run}", width=args.width, height=args.height,
                         selector=CHART if args.page != "export" else '[data-testid="stExpander"], h2')
        errors = page.locator('[data-testid="stException"]').count()
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB); exceptions on page: {errors}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
