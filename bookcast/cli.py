"""The `bookcast` command: one subcommand per job, each a thin call into its package.

Heavy imports happen inside the commands so `bookcast --help` and cold starts stay fast.
"""

from __future__ import annotations

import sys

import typer

from bookcast.errors import UserError

app = typer.Typer(
    name="bookcast",
    help="Record order books, build fee-aware features, train models, backtest honestly.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


def main() -> None:
    _register()
    try:
        code = app(standalone_mode=False)  # typer turns Ctrl-C into a returned 130
    except UserError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    if isinstance(code, int) and code:
        if code == 130:
            typer.echo("interrupted", err=True)
        sys.exit(code)
