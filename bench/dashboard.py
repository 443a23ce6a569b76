"""How long a dashboard page takes to open on a day of 1-second, 100-level snapshots.

Writes one day (86,400 rows x 100 levels a side, plus ~1 trade a second) with the
collector's own Parquet writer, builds features, the opportunity report, a logistic
run and its backtest on it with the real packages, then opens every page:
- server side: Streamlit's AppTest runs the page script, cold (caches cleared) and warm;
- in the browser (when Debian's chromium is installed): `bookcast dashboard`, headless
  Chromium, time from navigation until the page's charts are drawn.
The anchor is the issue's budget of 2 s per page; ratios are time / 2 s.

    .venv/bin/python bench/dashboard.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bookcast.paths import partition_dir  # noqa: E402
from bookcast.schema import SNAPSHOT_SCHEMA, TRADE_SCHEMA, file_metadata  # noqa: E402
from collector.writers import write_table_atomic  # noqa: E402

BUDGET_S = 2.0
SECOND = 1_000_000_000
DAY_START_NS = 1_723_161_600 * SECOND  # 2024-08-09 00:00 UTC
PAGES = ("data", "book", "features", "models", "backtest")
VENUE, SYMBOL, TICK = "binance-spot", "BTCUSDT", 0.01


def write_day(root: Path, rows: int = 86_400, depth: int = 100, seed: int = 0) -> None:
    """A random-walk book on the 1 s grid and Poisson trades, in the collector's layout."""
    rng = np.random.default_rng(seed)
    ts = DAY_START_NS + np.arange(rows, dtype=np.int64) * SECOND
    bid0 = 6_000_000 + np.cumsum(rng.integers(-3, 4, rows))  # in ticks
    spread = 1 + (rng.random(rows) < 0.2)
    levels = np.arange(depth)
    bid_px = (bid0[:, None] - levels) * TICK
    ask_px = ((bid0 + spread)[:, None] + levels) * TICK
    offsets = pa.array(np.arange(0, rows * depth + 1, depth, dtype=np.int32))

    def lists(values: np.ndarray) -> pa.Array:
        return pa.ListArray.from_arrays(offsets, pa.array(values.ravel()))

    ts_type = SNAPSHOT_SCHEMA.field("ts").type
    table = pa.Table.from_arrays([
        pa.array(ts).cast(ts_type), pa.array(ts - 5_000_000).cast(ts_type),
        pa.array(ts - 1_000_000).cast(ts_type), pa.array(np.arange(rows, dtype=np.int64)),
        lists(bid_px), lists(np.round(rng.lognormal(0, 1.2, (rows, depth)), 5)),
        lists(ask_px), lists(np.round(rng.lognormal(0, 1.2, (rows, depth)), 5)),
        pa.array(rng.integers(1, 50, rows).astype(np.int32)), pa.array(np.zeros(rows, bool)),
    ], schema=SNAPSHOT_SCHEMA)
    meta = file_metadata(VENUE, SYMBOL, depth=depth, interval_ns=SECOND, tick_size=repr(TICK),
                         tick_size_source="bench")
    folder = partition_dir(root, "snapshots", VENUE, SYMBOL, "2024-08-09")
    write_table_atomic(table.replace_schema_metadata(meta), folder / f"part-{ts[0]}.parquet")

    n_trades = rows
    t_ns = np.sort(DAY_START_NS + rng.integers(0, rows * SECOND, n_trades))
    row = (t_ns - DAY_START_NS) // SECOND
    side = np.where(rng.random(n_trades) < 0.5, 1, -1).astype(np.int8)
    price = np.where(side > 0, ask_px[row, 0], bid_px[row, 0])
    tr_type = TRADE_SCHEMA.field("ts_recv").type
    trades = pa.Table.from_arrays([
        pa.array(t_ns).cast(tr_type), pa.array(t_ns - 3_000_000).cast(tr_type),
        pa.array([str(i) for i in range(n_trades)]), pa.array(price),
        pa.array(np.round(rng.exponential(0.05, n_trades), 5)), pa.array(side),
    ], schema=TRADE_SCHEMA)
    folder = partition_dir(root, "trades", VENUE, SYMBOL, "2024-08-09")
    write_table_atomic(trades.replace_schema_metadata(file_metadata(VENUE, SYMBOL)),
                       folder / f"part-{t_ns[0]}.parquet")


def build_pipeline(root: Path) -> dict[str, float]:
    from backtest.engine import BacktestConfig, backtest_run, write_backtest
    from features.build import build_features
    from features.opportunities import opportunity_table, write_report
    from models.config import TrainConfig
    from models.runs import train_run

    took = {}
    horizons = [SECOND, 10 * SECOND, 60 * SECOND]
    t = time.perf_counter()
    build_features(root, "compact", horizons_ns=horizons, fee_bps=0.0)
    write_report(opportunity_table(root, horizons), root)
    took["features + opportunities"] = time.perf_counter() - t
    t = time.perf_counter()
    run_dir = train_run(root, TrainConfig(model="logistic", horizon_ns=10 * SECOND,
                                          feature_set="compact"))
    write_backtest(backtest_run(root, run_dir.name, BacktestConfig(
        fee_bps=1.0, hold_ns=10 * SECOND, horizon_ns=10 * SECOND)), root)
    took["run + backtest"] = time.perf_counter() - t
    return took


def time_apptest(root: Path) -> dict[str, tuple[float, float]]:
    """(cold, warm) seconds of each page's script under AppTest."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["BOOKCAST_DATA_DIR"] = str(root)
    os.environ["BOOKCAST_METRICS_URL"] = "http://127.0.0.1:9/metrics"
    out = {}
    for page in PAGES:
        times = []
        for _ in ("cold", "warm"):
            at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
            if page == "data":
                if not times:
                    st.cache_data.clear()
                t = time.perf_counter()
                at.run()
            else:
                at.run()  # the Data page opens first, as in the browser; not timed
                if not times:
                    st.cache_data.clear()
                at.switch_page(f"pages/{page}.py")
                t = time.perf_counter()
                at.run()
            times.append(time.perf_counter() - t)
            assert not at.exception, [e.value for e in at.exception]
        out[page] = (times[0], times[1])
    return out


def wait_drawn(page: object, title: str) -> None:
    """Until the page's heading reads `title`, a chart is drawn and no script runs."""
    page.locator("h1", has_text=title).first.wait_for(timeout=120_000)
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for(timeout=120_000)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
        timeout=120_000)


def time_browser(root: Path) -> dict[str, float] | None:
    """Seconds until a page is drawn: the first visit, then each page from the sidebar."""
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        return None
    import socket
    import urllib.request

    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "bookcast", "dashboard", "--data-dir",
                             str(root), "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.3)
        out = {}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(chromium), args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1440, "height": 2000})
            t = time.perf_counter()
            page.goto(url)  # a user's first visit: the app's scripts load once
            wait_drawn(page, "Data")
            out["first visit (data)"] = time.perf_counter() - t
            # Then the user moves through the sidebar, as the app is used.
            for name in (*PAGES[1:], PAGES[0]):
                title = name.capitalize()
                t = time.perf_counter()
                page.locator('[data-testid="stSidebarNavLink"]', has_text=title).click()
                wait_drawn(page, title)
                out[name] = time.perf_counter() - t
            browser.close()
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="Build the data root here and keep it.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        t = time.perf_counter()
        write_day(root)
        print(f"wrote one day of snapshots (86,400 x 100 levels) and trades in "
              f"{time.perf_counter() - t:.1f} s")
        for step, seconds in build_pipeline(root).items():
            print(f"{step}: {seconds:.1f} s")
        server = time_apptest(root)
        browser = time_browser(root)
    print(f"\n| page | script cold (s) | script warm (s) | browser (s) | browser / {BUDGET_S:g} s |")
    print("|---|---:|---:|---:|---:|")
    for page, (cold, warm) in server.items():
        b = browser.get(page) if browser else None
        print(f"| {page} | {cold:.2f} | {warm:.2f} | {'-' if b is None else f'{b:.2f}'} | "
              f"{'-' if b is None else f'{b / BUDGET_S:.2f}'} |")
    if browser:
        first = browser["first visit (data)"]
        print(f"\nfirst visit of the app (loads its scripts, opens Data): {first:.2f} s")


if __name__ == "__main__":
    main()
