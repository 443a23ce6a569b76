"""The emulator and the daemon as child processes: used by the demo and the live tests.

Both are the real `bookcast serve` and `bookcast collect` commands on 127.0.0.1; these
classes only start them, read the address or metrics port they announce, and stop them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

BOOKCAST = str(Path(sys.executable).parent / "bookcast")
STARTUP_S = 30.0


def command(*args: str, code: Path | None = None) -> list[str]:
    """`bookcast ARGS`, or, with `code` (another source tree, e.g. a benchmark's anchor),
    `python -m bookcast ARGS` running that tree's code instead."""
    return [BOOKCAST, *args] if code is None else [sys.executable, "-m", "bookcast", *args]


def launch_options(code: Path | None) -> dict:
    if code is None:
        return {}
    # PYTHONPATH and the working directory both: `python -m` puts the latter first
    return {"env": {**os.environ, "PYTHONPATH": str(code)}, "cwd": str(code)}


class EmulatorProcess:
    """`bookcast serve CAPTURE... ARGS`; `addresses` maps each venue to HOST:PORT."""

    def __init__(self, captures: list[Path], *args: str, code: Path | None = None) -> None:
        # stderr to a file: a pipe nobody reads would stall a chatty emulator when full
        self.stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by close()
        self.proc = subprocess.Popen(command("serve", *map(str, captures), *args, code=code),
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                     **launch_options(code))
        self.addresses: dict[str, str] = {}
        try:
            self._wait_until_ready()
        except BaseException:  # an interrupt during start-up must not orphan the child
            self.close()
            raise

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_S
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait()
                self.stderr.seek(0)
                raise RuntimeError(f"the emulator died: {self.stderr.read()}")
            if line.startswith("serving "):
                _, venue, _, address = line.split()
                self.addresses[venue] = address
            if line.strip() == "ready":
                return
        raise RuntimeError("the emulator did not start")

    def stats(self, venue: str) -> dict:
        with urllib.request.urlopen(f"http://{self.addresses[venue]}/_emulator/stats") as r:
            return json.loads(r.read())

    def wait_done(self, venue: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = self.stats(venue)
            if stats["done"]:
                return stats
            time.sleep(0.1)
        raise AssertionError(f"playback did not finish: {self.stats(venue)}")

    def close(self) -> None:
        self.stderr.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class DaemonProcess:
    """`bookcast collect --data-dir DIR --metrics-port 0 ARGS`, its JSON log in a file."""

    def __init__(self, data_dir: Path, *args: str, log: Path | None = None,
                 code: Path | None = None) -> None:
        self.code = code
        self.data_dir = data_dir
        self.log_path = log or data_dir.parent / f"{data_dir.name}-daemon.log"
        self.log_file = self.log_path.open("w")
        self.started = time.monotonic()
        self.proc = self._popen([BOOKCAST, "collect", "--data-dir", str(data_dir),
                                 "--metrics-port", "0", *args])
        try:
            self.metrics_port = self._wait_for_port()
        except BaseException:  # an interrupt during start-up must not orphan the child
            self.close()
            raise

    def _popen(self, argv: list[str]) -> subprocess.Popen:
        return subprocess.Popen(command(*argv[1:], code=self.code), stdout=subprocess.DEVNULL,
                                stderr=self.log_file, **launch_options(self.code))

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            for event in self.events():
                if event.get("event") == "metrics listening":
                    return int(event["metrics_port"])
            if self.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited: {self.log_path.read_text()}")
            time.sleep(0.05)
        raise RuntimeError("the daemon did not start")

    def events(self) -> list[dict]:
        events = []
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):  # a line being written
                    events.append(json.loads(line))
        return events

    def metrics(self) -> dict[str, float]:
        """Sample name -> value summed over labels ('name{label=value}' keys too)."""
        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                values[sample.name] = values.get(sample.name, 0.0) + sample.value
                for key, value in sample.labels.items():
                    name = f"{sample.name}{{{key}={value}}}"
                    values[name] = values.get(name, 0.0) + sample.value
        return values

    def healthz(self) -> int:
        return self._health()[0]

    def health_text(self) -> str:
        return self._health()[1]

    def _health(self) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.metrics_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> tuple[int, float]:
        """Signal the daemon and wait for it: (exit status, wall seconds to exit). The wall
        time includes waiting for a core on a busy machine; `own_shutdown_s` does not."""
        started = time.monotonic()
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        self.log_file.close()
        return rc, time.monotonic() - started

    def own_shutdown_s(self) -> float | None:
        """The daemon's own account of its shutdown (signal handled to everything handed
        over or given up), from its "stopped" log line; None if it has not stopped."""
        stopped = [e for e in self.events() if e.get("event", "").startswith("stopped")]
        return float(stopped[-1]["shutdown_s"]) if stopped else None

    def close(self, timeout: float = 15.0) -> None:
        """Stop the daemon the way systemd does: SIGTERM, so it flushes and logs "stopped";
        SIGKILL only if it has not exited within `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
