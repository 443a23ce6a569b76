"""The real server (`bookcast dashboard`) opened page by page in headless Chromium."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.dashboard.test_answers import write_verdict

# The test refreshes the docs' screenshots only when asked (BOOKCAST_SCREENSHOTS=1): a test
# run must not change tracked files. Otherwise they go to a temporary folder.
DOC_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# url path -> how many plotly charts the page must draw on the pipeline's data root
PAGES = {"": 1, "book": 1, "features": 2, "models": 5, "backtest": 7}
CHROMIUM_MISSING = ("Chromium is not installed, so the dashboard's browser test cannot run: "
                    "apt-get install chromium chromium-driver (or run `make test`, which "
                    "installs it where it can).")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 180) -> None:
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


def start_dashboard(root: Path) -> tuple[str, subprocess.Popen]:
    port = free_port()
    env = {**os.environ, "BOOKCAST_METRICS_URL": "http://127.0.0.1:9/metrics"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bookcast", "dashboard", "--data-dir", str(root),
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return url, proc


def stop_and_check_nothing_is_left(proc: subprocess.Popen, sig: signal.Signals) -> int:
    """Stop `bookcast dashboard` with `sig`; fail if any process it started survives."""
    family = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
    proc.send_signal(sig)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(f"bookcast dashboard ignored {sig.name} for 30 s") from None
    alive = [p for p in psutil.wait_procs([psutil.Process(pid) for pid in family
                                           if psutil.pid_exists(pid)], timeout=15)[1]
             if p.status() != psutil.STATUS_ZOMBIE]
    for p in alive:
        p.kill()
    assert not alive, f"{sig.name} left the dashboard's processes running: {alive}"
    return code


@pytest.fixture
def server(pipeline_root: Path, tmp_path: Path):
    root = tmp_path / "data"
    shutil.copytree(pipeline_root, root)
    write_verdict(root)  # the screenshots show the fee x horizon answer
    url, proc = start_dashboard(root)
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            stop_and_check_nothing_is_left(proc, signal.SIGTERM)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_dashboard_stops_the_whole_app_on_a_signal(pipeline_root, sig):
    url, proc = start_dashboard(pipeline_root)
    assert psutil.Process(proc.pid).children(recursive=True)  # the streamlit server
    assert stop_and_check_nothing_is_left(proc, sig) == 0
    assert not http_answers(f"{url}/_stcore/health")


def http_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.browser
@pytest.mark.timeout(1200)  # a minute or two on 2 cores; far longer when they are busy
def test_every_page_renders_its_charts_in_chromium(server, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail(CHROMIUM_MISSING)  # `make test` installs it or says it could not
    from playwright.sync_api import sync_playwright

    url, proc = server
    shots = DOC_SCREENSHOTS if os.environ.get("BOOKCAST_SCREENSHOTS") == "1" else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
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
            page.screenshot(path=str(shots / f"{path or 'data'}.png"), full_page=True)
            assert (shots / f"{path or 'data'}.png").stat().st_size > 10_000, path
        browser.close()
    assert proc.poll() is None  # the server is still up after every page
