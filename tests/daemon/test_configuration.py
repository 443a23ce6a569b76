"""Bad configuration ends in one sentence and a non-zero exit; a dead endpoint is retried."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import BOOKCAST, Daemon, Emulator


def collect(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([BOOKCAST, "collect", *args], capture_output=True, text=True,
                          timeout=timeout)


def one_sentence(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_an_unknown_venue_is_one_sentence(tmp_path: Path) -> None:
    line = one_sentence(collect("--venue", "binance-moon", "--symbol", "BTCUSDT",
                                "--data-dir", str(tmp_path)))
    assert "Unknown venue 'binance-moon'" in line and "binance-spot" in line


def test_a_symbol_spelled_wrong_for_the_venue_is_one_sentence(tmp_path: Path) -> None:
    line = one_sentence(collect("--venue", "kraken", "--symbol", "XBTUSD",
                                "--data-dir", str(tmp_path)))
    assert "'XBTUSD' is not a kraken symbol" in line


def test_a_symbol_the_venue_does_not_list_is_one_sentence(
        processes: list, slices: dict[str, Path], tmp_path: Path) -> None:
    emulator = Emulator([slices["btc-spot"]], "--speed", "20")
    processes.append(emulator)
    result = collect("--venue", "binance-spot", "--symbol", "DOGEUSDT", "--endpoint",
                     emulator.addresses["binance-spot"], "--data-dir", str(tmp_path),
                     "--metrics-port", "0")
    line = one_sentence(result)
    assert "does not know the symbol 'DOGEUSDT'" in line


def test_malformed_toml_is_one_sentence_naming_the_file(tmp_path: Path) -> None:
    config = tmp_path / "collector.toml"
    config.write_text('[[stream]]\nvenue = "binance-spot"\nsymbols = ["BTCUSDT"\n')
    line = one_sentence(collect("--config", str(config)))
    assert f"'{config}' is not valid TOML" in line


def test_a_metrics_port_in_use_is_one_sentence(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        line = one_sentence(collect("--venue", "binance-spot", "--symbol", "BTCUSDT",
                                    "--data-dir", str(tmp_path), "--metrics-port", str(port)))
    assert f"metrics port {port} on 127.0.0.1 is already in use" in line


def test_a_data_dir_that_cannot_be_written_is_one_sentence(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    line = one_sentence(collect("--venue", "binance-spot", "--symbol", "BTCUSDT",
                                "--data-dir", str(blocker / "data"), "--metrics-port", "0"))
    assert f"data directory '{blocker / 'data'}' is not writable" in line


def test_an_unreachable_endpoint_is_retried_with_growing_backoff_and_logged(
        tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]  # closed again: nothing listens there
    daemon = Daemon(tmp_path / "data", "--venue", "binance-spot", "--symbol", "BTCUSDT",
                    "--endpoint", f"127.0.0.1:{dead}", "--max-backoff", "2s")
    try:
        time.sleep(3.5)
        assert daemon.proc.poll() is None, "the daemon gave up on an unreachable venue"
        assert daemon.healthz() == 503
        failures = [e for e in daemon.events() if e["event"] == "connection failed; retrying"]
        assert len(failures) >= 3
        assert all(e["url"].startswith(f"ws://127.0.0.1:{dead}/stream") for e in failures)
        delays = [e["retry_in_s"] for e in failures]
        assert max(delays) <= 2.0
        # the back-off ceiling doubles per attempt: 0.5, 1, 2 (jitter keeps >= 10 %)
        assert [e["attempt"] for e in failures][:3] == [1, 2, 3]
        assert daemon.metrics()["bookcast_connect_failures_total"] >= 3
        rc, seconds = daemon.terminate(signal.SIGTERM)
        assert rc == 0 and seconds < 5
    finally:
        daemon.close()


@pytest.mark.parametrize("flags", [
    ["--venue", "binance-spot"],
    ["--venue", "binance-spot", "--symbol", "BTCUSDT", "--interval", "1ms"],
    ["--venue", "binance-spot", "--symbol", "BTCUSDT", "--endpoint", "localhost"],
])
def test_other_flag_mistakes_are_one_sentence(tmp_path: Path, flags: list[str]) -> None:
    one_sentence(collect(*flags, "--data-dir", str(tmp_path)))


def test_the_example_config_names_binance_coinbase_and_kraken() -> None:
    from collector.daemon.cli import build_config

    example = Path(__file__).resolve().parents[2] / "examples" / "collector.toml"
    cfg = build_config(example, None, None, None, None, None, None, None, None, None, None,
                       None, None, None)
    venues = {s.venue for s in cfg.streams}
    assert {"binance-spot", "coinbase-advanced", "kraken"} <= venues
    assert cfg.flush_interval_s == 5.0 and cfg.metrics_host == "127.0.0.1"
