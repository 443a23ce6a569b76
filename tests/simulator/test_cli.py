"""`bookcast simulate`: one capture per symbol, --calibrate-from, and one clear error per
bad input."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from bookcast.errors import UserError
from collector.capture import iter_capture
from collector.simulator.cli import register
from collector.simulator.presets import load_preset


@pytest.fixture()
def invoke():
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # keeps `simulate` a named subcommand
        pass

    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["simulate", *args])


def test_simulate_writes_one_capture_per_symbol(invoke, tmp_path):
    result = invoke("--hours", "0.003", "--symbols", "BTCUSDT,ETHUSDT", "--seed", "3",
                    "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (tmp_path / "binance-spot").iterdir())
    assert files == ["btcusdt_sim_seed3.jsonl.gz", "ethusdt_sim_seed3.jsonl.gz"]
    kinds = [r.kind for r in iter_capture(tmp_path / "binance-spot" / files[1])]
    assert kinds.count("http") == 1 and kinds.count("recv") > 100


@pytest.mark.parametrize(("args", "named"), [
    (["--hours", "0"], "--hours"),
    (["--hours", "-1"], "--hours"),
    (["--hours", "0.01", "--venue", "kraken"], "binance-spot"),
    (["--hours", "0.01", "--symbols", "DOGEUSDT"], "DOGEUSDT"),
])
def test_bad_input_gives_one_clear_error(invoke, tmp_path, args, named):
    result = invoke(*args, "--out", str(tmp_path))
    assert isinstance(result.exception, UserError)
    assert named in str(result.exception)
    assert "\n" not in str(result.exception)


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
                    str(capture))
    assert result.exit_code == 0, result.output
    preset = load_preset(tmp_path / "preset_ethusdt.toml")
    assert (preset.symbol, preset.tick_size, preset.lot_size) == ("ETHUSDT", "0.01", "0.0001")
    assert 2683 < preset.start_price < 2685
    assert 2.0 < preset.market_rate < 6.0  # 7.6 market orders/s over both sides
    assert 1.0 < preset.size_tail < 3.0
    assert 100 < preset.depth_ticks < 2000
    assert (tmp_path / "binance-spot" / "ethusdt_sim_seed0.jsonl.gz").is_file()
