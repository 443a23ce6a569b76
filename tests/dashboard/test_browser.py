"""The real server (`bookcast dashboard`) opened page by page in headless Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# url path -> how many plotly charts the page must draw on the pipeline's data root
PAGES = {"": 1, "book": 1, "features": 2, "models": 5, "backtest": 6}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the dashboard exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"the dashboard did not answer at {url} within {timeout_s} s")


@pytest.fixture
def server(pipeline_root: Path):
    port = free_port()
    env = {**os.environ, "BOOKCAST_METRICS_URL": "http://127.0.0.1:9/metrics"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bookcast", "dashboard", "--data-dir", str(pipeline_root),
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc)
        yield url, proc
    finally:
        proc.terminate()  # the command forwards the stop to its streamlit child
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


@pytest.mark.browser
def test_every_page_renders_its_charts_in_chromium(server):
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    url, proc = server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 2600})
        for path, n_charts in PAGES.items():
            page.goto(f"{url}/{path}", wait_until="domcontentloaded")
            charts = page.locator('[data-testid="stPlotlyChart"] .main-svg')
            charts.nth(0).wait_for(timeout=30_000)
            deadline = time.monotonic() + 30
            while page.locator('[data-testid="stPlotlyChart"]').count() < n_charts:
                assert time.monotonic() < deadline, f"/{path} drew too few charts"
                page.wait_for_timeout(250)
            # Streamlit marks a running script; wait for it to finish before judging.
            page.wait_for_function(
                "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                timeout=30_000)
            page.wait_for_timeout(500)
            assert page.locator('[data-testid="stException"]').count() == 0, path
            assert page.locator('[data-testid="stPlotlyChart"]').count() >= n_charts, path
            page.screenshot(path=str(SCREENSHOTS / f"{path or 'data'}.png"), full_page=True)
        browser.close()
    assert proc.poll() is None  # the server is still up after every page
