"""`bookcast dashboard`: start the Streamlit app on 127.0.0.1 and print where it is."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import typer

from bookcast import interrupts
from bookcast.cli import DATA_DIR_HELP
from bookcast.errors import UserError

APP = Path(__file__).resolve().parent / "app.py"


def _check_port(port: int) -> None:
    import socket

    if not 1 <= port <= 65535:
        raise UserError(f"The port {port} is not a TCP port; use one from 1 to 65535.")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise UserError(f"The port {port} on 127.0.0.1 is already in use; pass another "
                            "with --port.") from None


def streamlit_command(port: int) -> list[str]:
    """The `streamlit run` command line: loopback only, no browser, no usage statistics."""
    import sys

    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.address", "127.0.0.1", "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--global.developmentMode", "false",
            "--client.toolbarMode", "minimal"]


def wait_polling(proc: subprocess.Popen) -> int:
    """Wait for the server in short sleeps: a signal that the kernel hands to one of the
    libraries' threads (polars keeps one) still reaches the main thread's handler within
    a fraction of a second, where a blocking wait would never return."""
    while True:
        try:
            return proc.wait(timeout=0.25)
        except subprocess.TimeoutExpired:
            continue


def stop_server(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM to the server's process group, SIGKILL if it is still there after
    `timeout`; returns once nothing of it is left running."""
    import os
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers in the group outlive the leader
    proc.wait()


def register(app: typer.Typer) -> None:
    @app.command("dashboard")
    def dashboard(
        data_dir: Path | None = typer.Option(
            None, "--data-dir", help=DATA_DIR_HELP),
        port: int = typer.Option(8501, "--port", help="Port on 127.0.0.1."),
        metrics_url: str | None = typer.Option(
            None, "--metrics-url",
            help="The collector's Prometheus endpoint (default $BOOKCAST_METRICS_URL or "
                 "http://127.0.0.1:9108/metrics)."),
    ) -> None:
        """Browse books, features, models and backtests in a Streamlit app on 127.0.0.1."""
        import os

        from bookcast.paths import DATA_DIR_ENV, data_root
        from dashboard.health import DEFAULT_METRICS_URL, METRICS_URL_ENV

        root = data_root(data_dir)
        if data_dir is not None and not root.is_dir():
            raise UserError(f"The data directory {root} does not exist or is not a folder.")
        _check_port(port)
        env = dict(os.environ)
        env[DATA_DIR_ENV] = str(root.resolve())
        env[METRICS_URL_ENV] = metrics_url or env.get(METRICS_URL_ENV, DEFAULT_METRICS_URL)
        typer.echo(f"bookcast dashboard: http://127.0.0.1:{port}  (data root {root.resolve()})")
        # Its own session: the whole server (and anything it starts) stops as one group.
        proc = subprocess.Popen(streamlit_command(port), env=env, start_new_session=True)
        try:
            code = wait_polling(proc)
        except KeyboardInterrupt:  # SIGINT or SIGTERM: stop the app, then exit 0
            with interrupts.shielded():
                stop_server(proc)
            interrupts.stopped_cleanly()
            typer.echo("bookcast dashboard: stopped", err=True)
            return
        except BaseException:
            with interrupts.shielded():
                stop_server(proc)
            raise
        if code != 0:
            raise typer.Exit(code)
