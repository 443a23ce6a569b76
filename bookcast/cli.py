"""The `bookcast` command: one subcommand per job, each a thin call into its package.

The exit statuses are the user contract: 0 done, 2 a mistake in the input (a usage error
or a `UserError`: one sentence, never a traceback), 130 after SIGINT, 143 after SIGTERM.
Typer's own click may be the `click` package or a copy bundled inside typer (newer
versions); both are caught. Heavy imports happen inside the commands so `bookcast
--help` and cold starts stay fast.
"""

from __future__ import annotations

import signal
import sys
import typing
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import typer

from bookcast import interrupts
from bookcast.errors import UserError

USAGE_ERROR = 2

app = typer.Typer(
    name="bookcast",
    help="Record order books, build fee-aware features, train models, backtest honestly.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

# One example per main command, shown at the end of its --help (and checked by the tests
# to parse against the command's real options).
EXAMPLES: dict[str, list[str]] = {
    "demo": ["bookcast demo --data-dir demo-data"],
    "simulate": ["bookcast simulate --hours 2 --symbols BTCUSDT,ETHUSDT --seed 7 --out sim"],
    "serve": ["bookcast serve sim/binance-spot/btcusdt_sim_seed7.jsonl.gz --port 8765 --speed 10"],
    "collect": ["bookcast collect --venue binance-spot --symbol BTCUSDT --data-dir live"],
    "replay": ["bookcast replay capture.jsonl.gz --data-dir data --interval 100ms"],
    "inspect": ["bookcast inspect --data-dir data", "bookcast inspect --data-dir data --json"],
    "features": ["bookcast features --data-dir data --horizons 1s,10s --fee-preset binance-spot"],
    "opportunities": ["bookcast opportunities --data-dir data --fee-bps 0,1,5,10 --json"],
    "sql": ['bookcast sql "SELECT symbol, count(*) FROM snapshots GROUP BY 1" --data-dir data'],
    "train": ["bookcast train --data-dir data --model lightgbm --horizon 10s --symbol BTCUSDT"],
    "runs": ["bookcast runs --data-dir data --json"],
    "predict": ["bookcast predict --run RUN_ID --data-dir other-data"],
    "walkforward": ["bookcast walkforward --data-dir data --train-window 1h --step 15m"],
    "backtest": ["bookcast backtest --run RUN_ID --data-dir data --fee-preset binance-spot"],
    "verdict": ["bookcast verdict --data-dir data --json"],
    "dashboard": ["bookcast dashboard --data-dir data --port 8501"],
}


def _version(value: bool) -> None:
    if value:
        from bookcast import __version__

        typer.echo(f"bookcast {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                 help="Print the version and exit."),
) -> None:
    """Record order books, build fee-aware features, train models, backtest honestly."""


def _register() -> None:
    # Each package exposes its commands in `<package>/cli.py`; they are added here.
    import collector.cli as collector_cli

    collector_cli.register(app)
    for module_name in ("features.cli", "models.cli", "backtest.cli", "dashboard.cli",
                        "bookcast.demo"):
        try:
            module = __import__(module_name, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name is not None and module_name.startswith(exc.name):
                continue  # that package has no commands yet
            raise
        module.register(app)


def click_modules() -> list[ModuleType]:
    """The click the installed typer raises from: `click` itself, or typer's bundled copy."""
    import typer.core

    found = [m for m in (getattr(typer.core, "_click", None), getattr(typer.core, "click", None))
             if isinstance(m, ModuleType)]
    try:
        import click

        found.append(click)
    except ModuleNotFoundError:
        pass
    return list({id(m): m for m in found}.values())


def _plain_help(command: Any, examples: dict[str, list[str]], name: str = "") -> None:
    """Help without type tags: flags show nothing after their name, options that take a
    value a plain placeholder (TEXT, PATH, INTEGER, FLOAT), arguments only their name."""
    for param in getattr(command, "params", []):
        _untag(param)
    make_help_option = command.get_help_option

    def help_option(ctx: Any) -> Any:
        option = make_help_option(ctx)
        if option is not None:
            _untag(option)
        return option

    command.get_help_option = help_option
    if name in examples and not getattr(command, "epilog", None):
        command.epilog = "Example: " + "  |  ".join(examples[name])
    for sub_name, sub in getattr(command, "commands", {}).items():
        _plain_help(sub, examples, sub_name)


def _untag(param: Any) -> None:
    if param.param_type_name == "argument":
        param.metavar, shown = param.name.upper(), ""
    elif getattr(param, "is_flag", False) or getattr(param, "count", False):
        param.metavar = shown = ""
    else:
        param.metavar = shown = _placeholder(param)
    # Typer draws its type column from this method, which ignores `metavar` for arguments.
    param.display_type_rich = lambda ctx=None: shown or None


def _placeholder(param: Any) -> str:
    """TEXT, PATH, INTEGER or FLOAT for an option's value, from click's type (typer up to
    0.2x) or typer's own type descriptor (later versions)."""
    if hasattr(param, "type"):
        kind = getattr(param.type, "name", "text")
    else:
        desc = param.type_descriptor
        inner = typing.get_args(desc.annotation) if desc.is_list else ()
        annotation = inner[0] if inner else desc.annotation
        kind = "path" if desc.is_path else getattr(annotation, "__name__", "text")
    return {"integer": "INTEGER", "int": "INTEGER", "float": "FLOAT", "path": "PATH",
            "Path": "PATH"}.get(kind, "TEXT")


def build_command() -> Any:
    """The click command tree of `bookcast`, every package's commands registered."""
    _register()
    command = typer.main.get_command(app)
    _plain_help(command, EXAMPLES)
    return command


def _interrupted_line(sig: signal.Signals, argv: Sequence[str]) -> str:
    words = [a for a in argv if not a.startswith("-")][:1]
    what = "bookcast " + words[0] if words else "bookcast"
    doing = interrupts.interrupted_activity()
    during = f" while {doing}" if doing else ""
    return (f"interrupted: {what} stopped by {sig.name}{during}; files already written are "
            f"complete and nothing partial was kept under a final name.")


READER_MODULES = ("polars", "pyarrow", "duckdb", "_duckdb")


def input_error(exc: Exception, args: Sequence[str]) -> str | None:
    """The sentence for a failure the user's input caused, when a command let one escape:
    a path given on the command line that is missing or unreadable, or a damaged Parquet
    file under the data root. None when the failure is the code's own."""
    from pathlib import Path

    from bookcast.errors import damaged_file, unreadable_parquet
    from bookcast.paths import data_root

    given = [Path(a) for a in args if not a.startswith("-")]
    filename = getattr(exc, "filename", None)
    if isinstance(exc, OSError) and filename is not None:
        path = Path(filename)
        if any(path == g or path.resolve() == g.resolve() for g in given):
            return f"The path '{path}' cannot be used: {exc.strerror or exc}."
    if type(exc).__module__.split(".")[0] in READER_MODULES or isinstance(exc, OSError):
        root = data_root(_option_value(args, "--data-dir"))
        candidates = [root, *(g for g in given if g.is_dir())]
        files = (f for folder in candidates if folder.is_dir()
                 for f in sorted(folder.rglob("*.parquet")) if not f.name.startswith("."))
        bad = unreadable_parquet(files)
        if bad is not None:
            return damaged_file(*bad)
    return None


def _option_value(args: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    interrupts.install()
    modules = click_modules()
    click_errors = tuple(m.exceptions.ClickException for m in modules)
    aborts = (*(a for m in modules if (a := getattr(m.exceptions, "Abort", None))), typer.Abort)
    code: Any = 0
    try:
        command = build_command()
        code = command.main(args=args, prog_name="bookcast", standalone_mode=False)
    except UserError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        code = USAGE_ERROR
    except click_errors as exc:
        exc.show()
        code = exc.exit_code
    except (KeyboardInterrupt, *aborts):
        code = interrupts.exit_status(interrupts.received() or signal.SIGINT)
    except Exception as exc:
        sentence = input_error(exc, args)
        if sentence is None:
            raise  # a bug: it keeps its traceback
        typer.secho(f"error: {sentence}", err=True, fg=typer.colors.RED)
        code = USAGE_ERROR
    sig = interrupts.received()
    if sig is not None:
        typer.echo(_interrupted_line(sig, args), err=True)
        code = interrupts.exit_status(sig)
    sys.exit(code if isinstance(code, int) else 0)
