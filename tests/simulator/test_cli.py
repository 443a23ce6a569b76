"""`bookcast simulate`: captures per session, scenarios, --calibrate-from, --compare, and
one clear error per bad input with nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import typer
from typer.testing import CliRunner

from bookcast.errors import UserError
from collector.capture import iter_capture
from collector.processes import BOOKCAST
from collector.simulator.cli import register
from collector.simulator.presets import PRESETS, load_preset


@pytest.fixture()
def invoke():
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # keeps `simulate` a named subcommand
        pass

    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["simulate", *args])


def test_simulate_writes_one_capture_per_binance_symbol_and_one_per_coinbase_session(
        invoke, tmp_path):
    result = invoke("--hours", "0.003", "--seed", "3", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (tmp_path / "binance-spot").iterdir())
    assert files == ["btcusdt_sim_seed3.jsonl.gz", "ethusdt_sim_seed3.jsonl.gz"]
    kinds = [r.kind for r in iter_capture(tmp_path / "binance-spot" / files[1])]
    assert kinds.count("http") == 1 and kinds.count("recv") > 100
    result = invoke("--hours", "0.003", "--venue", "coinbase-advanced", "--preset", "null",
                    "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "coinbase-advanced").iterdir()] == \
        ["btc-usd+eth-usd_sim_seed0.jsonl.gz"]


@pytest.mark.parametrize(("args", "named"), [
    (["--hours", "0"], "--hours"),
    (["--hours", "-1"], "--hours"),
    (["--hours", "0.01", "--venue", "kraken"], "binance-spot"),
    (["--hours", "0.01", "--symbols", "DOGEUSDT"], "DOGEUSDT"),
    (["--hours", "0.01", "--venue", "coinbase-advanced", "--symbols", "BTCUSDT"], "BTCUSDT"),
    (["--hours", "0.01", "--preset", "nul"], "nul"),
    (["--hours", "0.01", "--preset", "regime-switch", "--switch-every", "soon"], "soon"),
    (["--hours", "0.01", "--preset", "missing.toml"], "missing.toml"),
    (["--hours", "0.01", "--compression", "xz"], "xz"),
])
def test_bad_input_gives_one_clear_error_and_writes_nothing(invoke, tmp_path, args, named):
    result = invoke(*args, "--out", str(tmp_path / "out"))
    assert isinstance(result.exception, UserError), result.output
    assert named in str(result.exception)
    assert "\n" not in str(result.exception)
    assert not list((tmp_path / "out").rglob("*.jsonl.*"))


def test_unwritable_out_gives_one_clear_error(invoke, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = invoke("--hours", "0.01", "--out", str(blocker / "sub"))
    assert isinstance(result.exception, UserError)
    assert "--out" in str(result.exception)


def test_calibrate_from_a_real_capture_writes_the_preset_it_simulates(invoke, tmp_path,
                                                                       captures_dir):
    capture = captures_dir / "binance-spot" / "ethusdt_20240808-09.jsonl.gz"
    result = invoke("--hours", "0.002", "--out", str(tmp_path), "--calibrate-from",
                    str(capture), "--calibrate-rounds", "1")
    assert result.exit_code == 0, result.output
    preset = load_preset(tmp_path / "preset_ethusdt.toml")
    builtin = PRESETS[("binance-spot", "ETHUSDT")]
    assert (preset.symbol, preset.tick_size, preset.lot_size) == ("ETHUSDT", "0.01", "0.0001")
    assert 2683 < preset.start_price < 2685
    # the moment rules give what the built-in preset was calibrated with
    for name in ("market_rate", "cancel_rate", "far_rate", "limit_size", "max_order",
                 "fill_power", "null_requote_rate"):
        assert getattr(preset, name) == pytest.approx(getattr(builtin, name), rel=0.02), name
    assert (tmp_path / "binance-spot" / "ethusdt_sim_seed0.jsonl.gz").is_file()
    # and the file it wrote is a preset --preset reads back
    again = invoke("--hours", "0.002", "--out", str(tmp_path / "again"), "--preset",
                   str(tmp_path / "preset_ethusdt.toml"))
    assert again.exit_code == 0, again.output


def test_compare_prints_every_band_real_against_simulated(invoke, captures_dir):
    capture = captures_dir / "binance-usdm" / "ethusdt_20240808.jsonl.gz"
    result = invoke("--compare", str(capture), "--hours", "0.1", "--markdown")
    assert result.exit_code == 0, result.output
    from collector.simulator.stats import BANDS

    lines = [line for line in result.output.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + len(BANDS)
    assert "real binance-usdm ETHUSDT" in lines[0]
    for band, line in zip(BANDS, lines[1:], strict=True):
        assert line.startswith(f"| {band.label} |")


def test_an_interrupted_simulation_leaves_no_capture_behind(tmp_path):
    # a child of a background job inherits SIGINT ignored; give it back its default
    proc = subprocess.Popen([BOOKCAST, "simulate", "--hours", "2", "--out", str(tmp_path),
                             "--symbols", "BTCUSDT"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    partial = tmp_path / "binance-spot" / ".btcusdt_sim_seed0.jsonl.gz.tmp"
    while not (partial.exists() and partial.stat().st_size > 0):
        assert time.monotonic() < deadline, "the simulation never started writing"
        assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    # it stopped there (a finished session prints its summary line); the exit status of an
    # interrupted command is bookcast/cli.py's to give
    assert "real time" not in out
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], os.listdir(tmp_path)
