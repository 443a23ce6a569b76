"""`--json` documents carry the keys docs/cli.md promises, with figures that agree with
the files they come from."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest

from tests.cli.conftest import run_bookcast
from tests.conftest import PROJECT_ROOT


def documented_keys() -> dict[str, tuple[set[str], dict[str, set[str]]]]:
    """command -> (document keys, entry keys per list) from docs/cli.md's table."""
    text = (PROJECT_ROOT / "docs" / "cli.md").read_text()
    table: dict[str, tuple[set[str], dict[str, set[str]]]] = {}
    for line in text.splitlines():
        match = re.match(r"\| `bookcast (\w+) --json` \| (.*?) \| (.*) \|$", line)
        if not match:
            continue
        command, document, entries = match.groups()
        per_list = {}
        for part in entries.split(";"):
            name, _, keys = part.partition(":")
            per_list[name.strip()] = set(re.findall(r"`(\w+)`", keys))
        table[command] = (set(re.findall(r"`(\w+)`", document)), per_list)
    return table


def json_of(*args) -> dict:
    proc = run_bookcast(*args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def check_keys(command: str, document: dict) -> None:
    top, entries = documented_keys()[command]
    assert top <= set(document), (command, top - set(document))
    for name, keys in entries.items():
        entry = document[name][0] if isinstance(document[name], list) else document[name]
        assert keys <= set(entry), (command, name, keys - set(entry))


def test_the_docs_document_every_json_command():
    assert set(documented_keys()) >= {"inspect", "runs", "backtest", "opportunities"}


def test_inspect_json_lists_every_dataset_feature_set_run_and_backtest(pipeline_root):
    doc = json_of("inspect", "--data-dir", pipeline_root, "--json")
    check_keys("inspect", doc)
    snapshots = pl.read_parquet(pipeline_root / "snapshots", hive_partitioning=True)
    assert sum(d["rows"] for d in doc["datasets"] if d["dataset"] == "snapshots") == snapshots.height
    assert sum(d["gaps"] for d in doc["datasets"] if d["dataset"] == "snapshots") == \
        snapshots["gap"].sum()
    assert {f["feature_set"] for f in doc["features"]} == {"compact"}
    assert doc["features"][0]["horizons"] == ["1s", "5s", "10s"]
    runs = {p.name for p in (pipeline_root / "runs").iterdir() if (p / "run.json").exists()}
    assert {r["run_id"] for r in doc["runs"]} == runs
    backtests = {p.name for p in (pipeline_root / "backtests").iterdir()}
    assert {b["backtest_id"] for b in doc["backtests"]} == backtests
    assert "reports/opportunities.parquet" in doc["reports"]
    # the positional spelling still works and says the same
    assert json_of("inspect", pipeline_root, "--json") == doc


def test_runs_json_gives_whole_run_ids_that_backtest_accepts(pipeline_root, copy_root):
    doc = json_of("runs", "--data-dir", pipeline_root, "--json")
    check_keys("runs", doc)
    run_id = doc["runs"][0]["run_id"]
    assert (pipeline_root / "runs" / run_id / "run.json").exists()
    root = copy_root(pipeline_root)
    result = json_of("backtest", "--run", run_id, "--data-dir", root, "--fee-bps", "1", "--json")
    check_keys("backtest", result)
    stats = json.loads((Path(result["path"]) / "stats.json").read_text())
    assert result["stats"]["n_trades"] == stats["n_trades"]
    assert result["stats"]["net_pnl"] == pytest.approx(
        stats["gross_pnl_mid"] - stats["spread_cost"] - stats["fees"])
    # the table names the run in full too
    table = run_bookcast("runs", "--data-dir", pipeline_root)
    assert run_id in table.stdout and "…" not in table.stdout


def test_opportunities_json_matches_the_saved_report(copy_root, pipeline_root):
    root = copy_root(pipeline_root)
    doc = json_of("opportunities", "--data-dir", root, "--horizons", "1s,5s", "--fee-bps",
                  "0,2", "--json")
    check_keys("opportunities", doc)
    saved = pl.read_parquet(doc["report"])
    assert len(doc["rows"]) == saved.height == 2 * 2 * 2  # symbols x horizons x fees
    for row, expected in zip(doc["rows"], saved.to_dicts(), strict=True):
        assert row["share_long"] == pytest.approx(expected["share_long"])
        assert 0.0 <= row["share_long"] <= 1.0


@pytest.fixture
def copy_root(tmp_path):
    import shutil

    def make(root: Path) -> Path:
        target = tmp_path / "copy"
        shutil.copytree(root, target)
        return target
    return make
