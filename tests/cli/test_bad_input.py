"""Bad input to the real CLI: a damaged Parquet file, a missing path, a refused query,
a symbol the capture lacks. Each ends in one sentence naming the input and exit 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.cli.conftest import assert_one_sentence, run_bookcast

MISSING = "no-such-thing"


def damage(path: Path) -> Path:
    """Keep the head and tail of a Parquet file but garble its middle, as a torn copy or
    a bad sector would."""
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2] + b"garbage" * 50 + raw[-200:])
    return path


@pytest.fixture(scope="module")
def damaged_roots(pipeline_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Copies of the pipeline's data root, each with one damaged file."""
    roots = {}
    for name, pattern in (("snapshots", "snapshots/venue=binance-spot/symbol=BTCUSDT/*/*.parquet"),
                          ("features", "features/compact/venue=binance-spot/symbol=BTCUSDT/*/*.parquet"),
                          ("predictions", "runs/*/predictions.parquet")):
        root = tmp_path_factory.mktemp(f"damaged-{name}")
        shutil.copytree(pipeline_root, root, dirs_exist_ok=True)
        roots[name] = (root, damage(sorted(root.glob(pattern))[0]))
    return roots


def run_id(root: Path) -> str:
    return next(p.name for p in (root / "runs").iterdir() if (p / "run.json").exists())


@pytest.mark.parametrize("dataset, args", [
    ("snapshots", ["inspect"]),
    ("snapshots", ["sql", "SELECT count(*) FROM snapshots"]),
    ("snapshots", ["features", "--set", "compact", "--horizons", "1s"]),
    ("snapshots", ["opportunities", "--horizons", "1s"]),
    ("features", ["inspect", "--json"]),
    ("features", ["sql", "SELECT count(*) FROM features", "--set", "compact"]),
    ("features", ["train", "--set", "compact", "--model", "logistic", "--horizon", "5s",
                  "--symbol", "BTCUSDT"]),
    ("features", ["walkforward", "--set", "compact", "--model", "logistic", "--horizon", "5s",
                  "--symbol", "BTCUSDT", "--train-window", "3m", "--step", "1m"]),
    ("features", ["predict", "--run", "RUN"]),
    ("predictions", ["backtest", "--run", "RUN"]),
], ids=lambda v: v if isinstance(v, str) else v[0])
def test_a_damaged_parquet_file_is_named_in_one_sentence(damaged_roots, dataset, args):
    root, bad = damaged_roots[dataset]
    args = [run_id(root) if a == "RUN" else a for a in args]
    proc = run_bookcast(*args, "--data-dir", root)
    assert_one_sentence(proc, str(bad))
    assert not list(root.rglob("*.tmp*"))


@pytest.mark.parametrize("args, named", [
    (["replay", MISSING + ".jsonl.gz"], MISSING),
    (["serve", MISSING + ".jsonl.gz"], MISSING),
    (["simulate", "--hours", "0.01", "--out", "sim", "--calibrate-from", MISSING + ".gz"],
     MISSING),
    (["inspect", "--data-dir", MISSING], MISSING),
    (["sql", "SELECT 1", "--data-dir", MISSING], MISSING),
    (["features", "--data-dir", MISSING], MISSING),
    (["opportunities", "--data-dir", MISSING], MISSING),
    (["train", "--data-dir", MISSING], MISSING),
    (["runs", "--data-dir", MISSING], MISSING),
    (["walkforward", "--data-dir", MISSING], MISSING),
    (["backtest", "--run", MISSING, "--data-dir", MISSING], MISSING),
    (["predict", "--run", MISSING, "--data-dir", MISSING], MISSING),
    (["dashboard", "--data-dir", MISSING], MISSING),
    (["collect", "--config", MISSING + ".toml"], MISSING),
], ids=lambda v: v[0] if isinstance(v, list) else None)
def test_a_missing_input_path_is_named_in_one_sentence(tmp_path, args, named):
    proc = run_bookcast(*args, cwd=tmp_path)
    assert_one_sentence(proc, named)


def test_sql_reads_only(pipeline_root, tmp_path):
    target = tmp_path / "out.csv"
    for query in (f"COPY (SELECT 1) TO '{target}'", "CREATE TABLE t AS SELECT 1",
                  f"ATTACH '{tmp_path / 'x.db'}'"):
        assert_one_sentence(run_bookcast("sql", query, "--data-dir", pipeline_root),
                            "only reads")
    assert not target.exists() and not (tmp_path / "x.db").exists()
    proc = run_bookcast("sql", "SELECT * FROM read_csv('/etc/hostname')", "--data-dir",
                        pipeline_root)
    assert_one_sentence(proc)  # nothing outside the data root is read either
    ok = run_bookcast("sql", "SELECT symbol, count(*) AS n, avg(spread_bps) AS spread_bps "
                      "FROM features GROUP BY 1 ORDER BY 1", "--set", "compact",
                      "--data-dir", pipeline_root)
    assert ok.returncode == 0, ok.stderr
    assert "BTCUSDT" in ok.stdout and "spread_bps" in ok.stdout and "…" not in ok.stdout


def test_replay_of_a_symbol_the_capture_lacks_names_what_it_holds(tmp_path, captures_dir):
    capture = captures_dir / "binance-spot" / "btcusdt_20240808-09.jsonl.gz"
    proc = run_bookcast("replay", capture, "--data-dir", tmp_path, "--symbol", "DOGEUSDT")
    assert_one_sentence(proc, "DOGEUSDT", "BTCUSDT", str(capture))


def test_replay_echoes_a_too_fine_interval_as_written(tmp_path, captures_dir):
    capture = captures_dir / "binance-spot" / "btcusdt_20240808-09.jsonl.gz"
    proc = run_bookcast("replay", capture, "--data-dir", tmp_path, "--interval", "1ms")
    assert_one_sentence(proc, "1ms", "10ms")
    assert "ns" not in proc.stderr.replace("10ms", "").replace("1ms", "")


def test_replay_prints_its_summary_once(tmp_path, captures_dir):
    capture = captures_dir / "kraken" / "book1000_10pairs_20210417.jsonl.gz"
    proc = run_bookcast("replay", capture, "--data-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("XBT/CHF") == 1, proc.stdout
    assert "\r" not in proc.stdout + proc.stderr  # no progress redraws in a log
