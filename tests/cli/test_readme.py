"""Every `bookcast` line in README.md runs as written, in order, in a fresh directory.

The only changes are sizes (fewer simulated hours, epochs and demo models, so the suite
stays fast), ports (free ones instead of the README's fixed ports) and `RUN_ID` (the
first run trained). Long-running commands (`serve`, `collect`, `dashboard`) start in the
background, are checked to be working, and must stop with exit 0 on SIGTERM. To add an
example, add it to the README; if it runs a new service, add its readiness check to
SERVICES below.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.conftest import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
BIN = Path(sys.executable).parent
DEADLINE_S = 300  # generous: the suite runs on a busy 2-core machine

# Lines that cannot run on a test machine, and why.
CANNOT_RUN = {
    "--config examples/collector.toml": "collects from the real exchanges over the internet",
    "--device cuda": "needs a CUDA GPU",
}
# (pattern, replacement): each must apply to some line, so the README and this list agree.
SMALLER = [
    (r"^(bookcast demo --data-dir \S+)$", r"\1 --hours 0.2 --live-seconds 4 --models logistic"),
    (r"^(bookcast demo --capture .*)$", r"\1 --live-seconds 4 --models logistic"),
    (r"^bookcast simulate --hours \d+", "bookcast simulate --hours 0.25"),
    (r"--epochs \d+", "--epochs 1 --window 20"),
    (r"--train-window 30m --step 15m", "--train-window 10m --step 4m"),
]


def readme_lines() -> list[str]:
    """The `bookcast ...` commands of the README's bash blocks, continuations joined."""
    lines, block = [], False
    pending = ""
    for raw in README.read_text().splitlines():
        if raw.startswith("```"):
            block = raw.strip() == "```bash" and not block
            continue
        if not block:
            continue
        text = pending + raw.strip()
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        command = re.sub(r"\s+#.*$", "", text).strip()
        if re.match(r"^(\S*/)?bookcast\s", command):
            lines.append(re.sub(r"^\S*/bookcast", "bookcast", re.sub(r"\s+", " ", command)))
    return lines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def option(line: str, name: str) -> str:
    return re.search(rf"{name} (\S+)", line).group(1)


# command -> (is it ready?, stop it once ready) for the commands that keep running
SERVICES: dict[str, tuple[Callable[[str, Path, Path], bool], bool]] = {
    "serve": (lambda line, cwd, out: "ready" in out.read_text(), False),
    "collect": (lambda line, cwd, out: any((cwd / option(line, "--data-dir") / "snapshots")
                                           .rglob("part-*.parquet")), True),
    "dashboard": (lambda line, cwd, out: http_ok(
        f"http://127.0.0.1:{option(line, '--port')}/_stcore/health"), True),
}


def first_trained_run(cwd: Path, data_dir: str) -> str:
    proc = subprocess.run([str(BIN / "bookcast"), "runs", "--data-dir", data_dir, "--json"],
                          cwd=cwd, capture_output=True, text=True, timeout=120)
    runs = [r for r in json.loads(proc.stdout)["runs"] if r["kind"] == "train"]
    return min(runs, key=lambda r: r["run_id"])["run_id"]


def stop(proc: subprocess.Popen, line: str) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"`{line}` did not stop within 60 s of SIGTERM") from None
    assert code == 0, f"`{line}` exited {code} on SIGTERM"


@pytest.mark.timeout(2400)  # about 4 minutes on 2 cores; far longer when they are busy
def test_every_readme_example_runs_in_order(tmp_path):
    lines = readme_lines()
    assert len(lines) >= 20, lines
    used = set()
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").symlink_to(PROJECT_ROOT.parent / "shared")  # ../shared/... resolves
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "100"}
    ports: dict[str, str] = {}
    background: list[tuple[subprocess.Popen, str]] = []
    try:
        for n, original in enumerate(lines):
            reason = next((why for key, why in CANNOT_RUN.items() if key in original), None)
            if reason:
                print(f"skipped ({reason}): {original}")
                continue
            line = original
            for i, (pattern, replacement) in enumerate(SMALLER):
                line, hits = re.subn(pattern, replacement, line)
                used.update([i] if hits else [])
            for old, new in ports.items():
                line = line.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
            for match in re.finditer(r"--port (\d+)", line):
                ports[match.group(1)] = str(free_port())
                line = line.replace(match.group(0), f"--port {ports[match.group(1)]}")
            line = re.sub(r"--metrics-port \d+", "--metrics-port 0", line)
            if "RUN_ID" in line:
                line = line.replace("RUN_ID", first_trained_run(work, "data"))
            command = line.split()[1]
            out = tmp_path / f"{n:02d}-{command}.log"
            if command in SERVICES:
                ready, stop_when_ready = SERVICES[command]
                proc = subprocess.Popen(["bash", "-c", f"exec {line}"], cwd=work, env=env,
                                        stdout=out.open("w"), stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
                deadline = time.monotonic() + DEADLINE_S
                while not ready(line, work, out):
                    assert proc.poll() is None, f"`{line}` exited {proc.returncode}:\n" \
                                                f"{out.read_text()[-3000:]}"
                    assert time.monotonic() < deadline, f"`{line}` never became ready"
                    time.sleep(0.2)
                if stop_when_ready:
                    stop(proc, line)
                else:
                    background.append((proc, line))
                continue
            started = time.monotonic()
            proc = subprocess.run(["bash", "-c", line], cwd=work, env=env, text=True,
                                  stdout=out.open("w"), stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=600)
            print(f"{time.monotonic() - started:6.1f} s  {line}")
            text = out.read_text()
            assert proc.returncode == 0, f"`{line}` exited {proc.returncode}:\n{text[-3000:]}"
            assert "Traceback" not in text and "…" not in text, f"`{line}`:\n{text[-3000:]}"
        for proc, line in background:
            stop(proc, line)
        background.clear()
    finally:
        for proc, _ in background:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert used == set(range(len(SMALLER))), "a size change no longer matches the README"
    # nothing the examples started is still running
    mine = psutil.Process().children(recursive=True)
    assert not [p for p in mine if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
