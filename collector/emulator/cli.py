"""`bookcast serve`: the exchange emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bookcast.errors import UserError


def serve(
    captures: Annotated[list[Path], typer.Argument(help="Capture files to play (recorded or "
                                                        "simulated).")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="First port (one per venue); 0 picks free "
                                           "ports.")] = 0,
    speed: Annotated[float, typer.Option(help="Playback speed; 0 plays as fast as the "
                                              "client reads.")] = 1.0,
    loop: Annotated[int, typer.Option("--loop", help="Play the captures this many times "
                                                     "(update ids move up each time).")] = 1,
    drop_every: Annotated[float | None, typer.Option(help="Close every connection each "
                                                          "SECONDS.")] = None,
    gap_every: Annotated[int | None, typer.Option(help="Skip every N-th depth message.")] = None,
    corrupt_every: Annotated[int | None, typer.Option(help="Garble every N-th depth "
                                                           "message.")] = None,
    stall: Annotated[float | None, typer.Option(help="Go quiet for SECONDS on each "
                                                     "connection, once.")] = None,
    stall_after: Annotated[int, typer.Option(help="Messages a connection gets before it "
                                                  "stalls.")] = 500,
    throttle_rest: Annotated[int, typer.Option(help="Answer the first N REST requests with "
                                                    "429 and Retry-After.")] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every event (INFO), "
                                                                  "not only warnings.")] = False,
) -> None:
    """Serve captures on loopback in each venue's own protocol, with optional faults."""
    import json
    import logging

    from collector.emulator.server import EmulatorConfig, FaultPlan, serve_captures

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for name, value in (("--gap-every", gap_every), ("--corrupt-every", corrupt_every)):
        if value is not None and value < 1:
            raise UserError(f"{name} {value} must be a positive number of messages.")
    for name, seconds in (("--drop-every", drop_every), ("--stall", stall)):
        if seconds is not None and seconds <= 0:
            raise UserError(f"{name} {seconds} must be a positive number of seconds.")
    if loop < 1:
        raise UserError(f"--loop {loop} must be at least 1.")
    faults = FaultPlan(drop_every, gap_every, corrupt_every, stall, stall_after, throttle_rest)
    config = EmulatorConfig(host, port, speed, loop, faults)

    def ready(addresses: dict[str, str]) -> None:
        for venue, address in addresses.items():
            typer.echo(f"serving {venue} on {address}")
        typer.echo("ready", err=False)

    counts = serve_captures(captures, config, ready)
    typer.echo(json.dumps({"faults": counts}))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
