"""Bad configuration ends in one sentence and a non-zero exit; a dead endpoint is retried."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
from pathlib import Path

import pytest

from .chaos import wait_for
from .conftest import BOOKCAST, Daemon, Emulator, stop_in_time


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
        assert stop_in_time(daemon) == 0
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


def test_an_unknown_toml_key_is_one_sentence_naming_it_and_the_likely_one(
        tmp_path: Path) -> None:
    config = tmp_path / "collector.toml"
    config.write_text('flush_intervall = "1s"\n[[stream]]\nvenue = "binance-spot"\n'
                      'symbols = ["BTCUSDT"]\n')
    line = one_sentence(collect("--config", str(config)))
    assert "unknown key 'flush_intervall'" in line and "did you mean 'flush_interval'" in line
    config.write_text('[[stream]]\nvenue = "binance-spot"\nsymbol = ["BTCUSDT"]\n')
    line = one_sentence(collect("--config", str(config)))
    assert "Stream 1" in line and "unknown key 'symbol'" in line


def test_a_second_daemon_on_the_same_partitions_exits_2_naming_the_holder(
        processes: list, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    data_dir = tmp_path / "data"
    first = Daemon(data_dir, "--venue", "binance-spot", "--symbol", "BTCUSDT", "--endpoint",
                   f"127.0.0.1:{dead}")
    processes.append(first)
    second = collect("--venue", "binance-spot", "--symbol", "ETHUSDT", "--symbol", "BTCUSDT",
                     "--endpoint", f"127.0.0.1:{dead}", "--data-dir", str(data_dir),
                     "--metrics-port", "0")
    line = one_sentence(second)
    assert f"already being written for binance-spot BTCUSDT by process {first.proc.pid}" in line
    # other symbols of the same venue may be collected by another daemon beside it
    other = Daemon(data_dir, "--venue", "binance-spot", "--symbol", "ETHUSDT", "--endpoint",
                   f"127.0.0.1:{dead}", log=tmp_path / "other.log")
    processes.append(other)
    assert other.proc.poll() is None
    assert first.terminate()[0] == 0 and other.terminate()[0] == 0


def test_a_bounded_run_that_received_nothing_says_so_and_exits_1(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    result = collect("--venue", "kraken", "--symbol", "XBT/USD", "--endpoint",
                     f"127.0.0.1:{dead}", "--data-dir", str(tmp_path / "data"),
                     "--metrics-port", "0", "--run-for", "2s", "--max-backoff", "0.5s")
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "Nothing was received in 2 s from kraken" in errors[0]
    assert "failed connection attempts" in errors[0]


def test_logs_are_text_at_a_terminal_and_json_when_asked(tmp_path: Path) -> None:
    import os
    import pty

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    args = [BOOKCAST, "collect", "--venue", "kraken", "--symbol", "XBT/USD", "--endpoint",
            f"127.0.0.1:{dead}", "--metrics-port", "0", "--run-for", "1s"]
    leader, follower = pty.openpty()
    proc = subprocess.Popen([*args, "--data-dir", str(tmp_path / "a")], stderr=follower,
                            stdout=subprocess.DEVNULL)
    os.close(follower)
    text = b""
    with contextlib.suppress(OSError):  # EIO once the child has closed the terminal
        while chunk := os.read(leader, 4096):
            text += chunk
    os.close(leader)
    proc.wait(30)
    lines = [line for line in text.decode().splitlines() if "collecting" in line]
    assert lines and not lines[0].startswith("{"), text
    assert "info" in lines[0] and "data_dir=" in lines[0]
    asked = subprocess.run([*args, "--data-dir", str(tmp_path / "b"), "--log-format", "json"],
                           capture_output=True, text=True, timeout=30)
    events = [json.loads(line) for line in asked.stderr.splitlines() if line.startswith("{")]
    assert any(e["event"] == "collecting" for e in events)
    piped = subprocess.run([*args, "--data-dir", str(tmp_path / "c")], capture_output=True,
                           text=True, timeout=30)
    assert any(line.startswith('{"ts"') for line in piped.stderr.splitlines())


def test_invalid_utf8_frames_are_counted_parse_errors_and_no_reconnect(
        processes: list, slices: dict[str, Path], tmp_path: Path) -> None:
    emulator = Emulator([slices["btc-spot"]], "--speed", "20", "--bad-utf8-every", "200")
    processes.append(emulator)
    daemon = Daemon(tmp_path / "data", "--venue", "binance-spot", "--symbol", "BTCUSDT",
                    "--endpoint", emulator.addresses["binance-spot"])
    processes.append(daemon)
    stats = emulator.wait_done("binance-spot")
    assert stats["bad_utf8"] >= 5

    def counted() -> bool:
        m = daemon.metrics()
        return m["bookcast_invalid_utf8_frames_total"] == stats["bad_utf8"] == \
            m["bookcast_parse_errors_total"]

    wait_for("every bad frame counted", counted)
    metrics = daemon.metrics()
    assert metrics["bookcast_disconnects_total"] == 0 and metrics["bookcast_gaps_total"] == 0
    assert daemon.terminate()[0] == 0
    # the frames are kept in the raw capture (as b64), and replay counts them alike
    from collector.replay import replay_captures

    from .conftest import raw_files

    summary = replay_captures(raw_files(tmp_path / "data", "binance-spot"), tmp_path / "again",
                              venue="binance-spot")
    assert summary.parse_errors == stats["bad_utf8"]


def test_sigterm_while_the_disk_is_full_exits_1_within_5_s_saying_what_was_lost(
        processes: list, slices: dict[str, Path], tmp_path: Path) -> None:
    from .chaos import fill, small_disk

    emulator = Emulator([slices["btc-spot"]], "--speed", "10", "--loop", "3")
    processes.append(emulator)
    with small_disk(tmp_path / "disk", "8m") as disk:
        daemon = Daemon(disk / "data", "--venue", "binance-spot", "--symbol", "BTCUSDT",
                        "--endpoint", emulator.addresses["binance-spot"], "--flush-interval",
                        "0.5s", "--interval", "50ms", log=tmp_path / "daemon.log")
        processes.append(daemon)
        wait_for("rows on disk",
                 lambda: daemon.metrics().get("bookcast_snapshots_written_total", 0) > 0)
        fill(disk)
        wait_for("a failing write", lambda: daemon.metrics()["bookcast_write_failing"] == 1)
        rc = stop_in_time(daemon)
    assert rc == 1
    stderr = daemon.log_path.read_text()
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr
    assert "Could not write" in errors[0] and "snapshot rows" in errors[0]
    assert "No space left on device" in errors[0]


def test_a_data_dir_turned_read_only_mid_run_is_survived_and_written_once_writable(
        processes: list, slices: dict[str, Path], tmp_path: Path) -> None:
    """The datasets' directories become read-only bind mounts of themselves (EROFS for
    every new file, as after a remount), then writable again."""
    import subprocess as sp

    emulator = Emulator([slices["btc-spot"]], "--speed", "10", "--loop", "3")
    processes.append(emulator)
    data_dir = tmp_path / "data"
    daemon = Daemon(data_dir, "--venue", "binance-spot", "--symbol", "BTCUSDT", "--endpoint",
                    emulator.addresses["binance-spot"], "--flush-interval", "0.5s")
    processes.append(daemon)
    wait_for("rows on disk",
             lambda: daemon.metrics().get("bookcast_snapshots_written_total", 0) > 0)
    frozen = [data_dir / "raw", data_dir / "snapshots", data_dir / "trades"]
    mounted = []
    try:
        for path in frozen:
            bind = sp.run(["mount", "--bind", str(path), str(path)], capture_output=True)
            if bind.returncode:
                pytest.skip(f"cannot bind-mount here ({bind.stderr.decode().strip()}); "
                            f"run as root (CI does)")
            mounted.append(path)
            sp.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        wait_for("a failing write and /healthz 503",
                 lambda: daemon.metrics()["bookcast_write_failing"] == 1
                 and daemon.healthz() == 503)
        assert "Read-only file system" in daemon.health_text()
        written = daemon.metrics()["bookcast_snapshots_written_total"]
    finally:
        for path in reversed(mounted):
            sp.run(["umount", str(path)], check=True)
    wait_for("writing again", lambda: daemon.metrics()["bookcast_write_failing"] == 0
             and daemon.metrics()["bookcast_snapshots_written_total"] > written
             and daemon.healthz() == 200)
    metrics = daemon.metrics()
    assert metrics["bookcast_rows_dropped_total"] == 0  # they waited, and were written late
    assert metrics["bookcast_write_errors_total"] > 0
    assert stop_in_time(daemon) == 0
    errors = [e for e in daemon.events() if e["event"].startswith("cannot write")]
    assert len(errors) == 1 and "Read-only" in errors[0]["error"]
