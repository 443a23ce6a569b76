"""SIGINT and SIGTERM to real `bookcast` processes: 130 / 143, one line saying what
stopped, no partial file under a final name, no temporary file left, no child left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from tests.cli.conftest import BOOKCAST

DEADLINE_S = 300  # generous: the suite runs on a busy 2-core machine


def start(*args: str | Path, log: Path) -> subprocess.Popen:
    out = log.open("w")
    return subprocess.Popen([BOOKCAST, *map(str, args)], stdout=out, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL,
                            env={**os.environ, "COLUMNS": "100"})


def wait_for(condition, what: str, proc: subprocess.Popen, timeout: float = DEADLINE_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        assert proc.poll() is None, f"the command ended ({proc.returncode}) before {what}"
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout} s")


def stop(proc: subprocess.Popen, sig: signal.Signals) -> tuple[int, str]:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=DEADLINE_S)
    return proc.returncode, err


def leftovers(root: Path) -> list[Path]:
    """Temporary files and folders: what an interrupted writer must not leave behind."""
    return [p for p in root.rglob("*") if ".tmp" in p.name]


def assert_complete_parquet(root: Path) -> int:
    files = [p for p in root.rglob("*.parquet")]
    for path in files:
        pq.read_table(path)  # every file under a final name reads completely
    return len(files)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_replay_interrupted_exits_128_plus_signal_and_keeps_only_whole_files(
        sig, tmp_path, captures_dir):
    spot = captures_dir / "binance-spot"
    data = tmp_path / "data"
    proc = start("replay", spot / "btcusdt_20240808-09.jsonl.gz",
                 spot / "ethusdt_20240808-09.jsonl.gz", "--data-dir", data,
                 "--interval", "10ms", "--depth", "full", "--rotate-rows", "100",
                 log=tmp_path / "out.log")
    wait_for(lambda: list(data.rglob("part-*.parquet")), "first Parquet file", proc)
    code, err = stop(proc, sig)
    assert code == 128 + sig, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith(f"interrupted: bookcast replay stopped by {sig.name} while "
                                "replaying 2 capture file(s)"), err
    assert "Traceback" not in err
    assert leftovers(data) == []
    assert assert_complete_parquet(data) >= 1


def daemon_events(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")
            and line.endswith("}")]


def test_demo_interrupted_while_collecting_stops_daemon_and_emulator_cleanly(tmp_path):
    data = tmp_path / "demo"
    proc = start("demo", "--data-dir", data, "--hours", "0.05", "--live-seconds", "120",
                 "--models", "logistic", log=tmp_path / "demo.log")
    children = psutil.Process(proc.pid)
    daemon_log = data / "live-daemon.log"
    # the daemon has written its first flush: there is something to lose
    wait_for(lambda: any(e.get("event") == "collecting" for e in daemon_events(daemon_log))
             and list((data / "live").rglob("*.jsonl.zst*")), "live collection", proc)
    spawned = children.children(recursive=True)
    assert len(spawned) >= 2  # the emulator and the daemon
    code, err = stop(proc, signal.SIGINT)
    assert code == 130, err
    assert ("interrupted: bookcast demo stopped by SIGINT while step 2/8 (collect live"
            in err), err
    events = [e.get("event") for e in daemon_events(daemon_log)]
    assert "stopped" in events, events  # the daemon flushed and said so
    assert leftovers(data) == []
    assert list((data / "live" / "raw").rglob("capture-*.jsonl.zst"))
    _, alive = psutil.wait_procs(spawned, timeout=30)
    assert not alive, f"left running: {alive}"


def test_demo_terminated_while_training_exits_143_and_leaves_no_partial_run(tmp_path):
    data = tmp_path / "demo"
    log = tmp_path / "demo.log"
    proc = start("demo", "--data-dir", data, "--hours", "0.3", "--live-seconds", "3",
                 "--models", "deeplob", "--deeplob-epochs", "50", log=log)
    wait_for(lambda: "6/8 train" in log.read_text(), "training step", proc, timeout=300)
    code, err = stop(proc, signal.SIGTERM)
    assert code == 143, err
    assert "interrupted: bookcast demo stopped by SIGTERM while step 6/8 (train" in err, err
    assert leftovers(data) == []
    runs = data / "runs"
    # hidden entries (.checkpoints, for resuming the training) are not runs
    partial = [p for p in runs.iterdir() if not p.name.startswith(".")
               and not (p / "run.json").exists()] if runs.exists() else []
    assert partial == []


def test_demo_interrupted_while_simulating_stops_its_second_simulation(tmp_path):
    data = tmp_path / "demo"
    proc = start("demo", "--data-dir", data, "--hours", "2", "--models", "logistic",
                 log=tmp_path / "demo.log")
    demo = psutil.Process(proc.pid)

    def second_simulation() -> list[psutil.Process]:
        found = []
        for child in demo.children(recursive=True):
            try:
                if "simulate" in child.cmdline():
                    found.append(child)
            except psutil.NoSuchProcess:
                pass
        return found

    # the later symbols are simulated by `bookcast simulate` in a child process
    spawned = wait_for(second_simulation, "the second simulation process", proc)
    code, err = stop(proc, signal.SIGINT)
    assert code == 130, err
    assert "interrupted: bookcast demo stopped by SIGINT while step 1/8 (simulate" in err, err
    assert "Traceback" not in err
    _, alive = psutil.wait_procs(spawned, timeout=30)
    assert not alive, f"left running: {alive}"
    assert leftovers(data) == []  # neither simulation left a partial capture


CALLBACK_INTERRUPTED = """
import ctypes, os, signal, sys, time
from bookcast import interrupts

interrupts.install()

@ctypes.CFUNCTYPE(None)
def callback():  # as llvmlite's cache callback: a C frame the exception cannot unwind
    os.kill(os.getpid(), signal.SIGINT)
    deadline = time.monotonic() + 10
    while interrupts.received() is None and time.monotonic() < deadline:
        pass  # the handler runs here, inside the callback

try:
    callback()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.01)
    print("carried on as if no signal came")
except interrupts.Interrupted as exc:
    print("unwound by", exc.signal.name)
"""


def test_an_interrupt_raised_inside_a_c_callback_still_unwinds_without_a_traceback():
    """Ctrl-C while Numba writes its cache ran the handler inside llvmlite's callback:
    Python printed "Exception ignored ... Traceback" and the demo went on for 48 s."""
    proc = subprocess.run([sys.executable, "-c", CALLBACK_INTERRUPTED], capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.strip() == "unwound by SIGINT", proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, \
        proc.stderr
