"""The emulator and the daemon as child processes: used by the demo and the live tests.

Both are the real `bookcast serve` and `bookcast collect` commands on 127.0.0.1; these
classes only start them, read the address or metrics port they announce, and stop them.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

BOOKCAST = str(Path(sys.executable).parent / "bookcast")
STARTUP_S = 30.0


class EmulatorProcess:
    """`bookcast serve CAPTURE... ARGS`; `addresses` maps each venue to HOST:PORT."""

    def __init__(self, captures: list[Path], *args: str) -> None:
        self.proc = subprocess.Popen([BOOKCAST, "serve", *map(str, captures), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
                raise RuntimeError(f"the emulator died: {self.proc.stderr.read()}")  # type: ignore[union-attr]
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
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class DaemonProcess:
    """`bookcast collect --data-dir DIR --metrics-port 0 ARGS`, its JSON log in a file."""

    def __init__(self, data_dir: Path, *args: str, log: Path | None = None) -> None:
        self.data_dir = data_dir
        self.log_path = log or data_dir.parent / f"{data_dir.name}-daemon.log"
        self.log_file = self.log_path.open("w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([BOOKCAST, "collect", "--data-dir", str(data_dir),
                                      "--metrics-port", "0", *args],
                                     stdout=subprocess.DEVNULL, stderr=self.log_file)
        try:
            self.metrics_port = self._wait_for_port()
        except BaseException:  # an interrupt during start-up must not orphan the child
            self.close()
            raise

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
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/healthz") as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        self.log_file.close()
        return rc, time.monotonic() - started

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
