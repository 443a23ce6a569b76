"""Usage errors, --version, completion and help, against the installed `bookcast` script."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest

from bookcast.cli import EXAMPLES, build_command
from tests.cli.conftest import BOOKCAST, run_bookcast

TYPE_TAG = re.compile(r"<(bool|str|int|float|path|Path|list\[[^\]]*\]|tuple\[[^\]]*\])>")
MAIN_COMMANDS = ("demo", "simulate", "serve", "collect", "replay", "inspect", "features",
                 "opportunities", "sql", "train", "runs", "predict", "walkforward",
                 "backtest", "dashboard")


@pytest.mark.parametrize("args", [
    ["frobnicate"], ["replay", "--bogus"], ["sql"], ["replay"], ["train", "--epochs", "x"],
    ["inspect", "--nope"], ["backtest", "--run"], ["--bogus"],
], ids=" ".join)
def test_a_usage_error_prints_usage_and_exits_2_without_a_traceback(args):
    proc = run_bookcast(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Error" in proc.stderr
    if args != ["backtest", "--run"]:  # click names a missing option value without usage
        assert "Usage: bookcast" in proc.stderr


def test_version_prints_the_installed_version():
    from importlib.metadata import version

    proc = run_bookcast("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"bookcast {version('bookcast')}"


def test_shell_completion_is_offered_and_completes_subcommands():
    # the shell is detected from the parent process, as at a prompt
    # (a second command keeps bash from exec-ing into bookcast, so bash stays the parent)
    proc = subprocess.run(["bash", "-c", f"{BOOKCAST} --show-completion; exit $?"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "_bookcast_completion" in proc.stdout, proc.stderr
    # what the installed bash function runs on <TAB> after `bookcast rep`
    completed = subprocess.run([BOOKCAST], capture_output=True, text=True, timeout=60,
                               env={"_BOOKCAST_COMPLETE": "complete_bash",
                                    "COMP_WORDS": "bookcast rep", "COMP_CWORD": "1",
                                    "PATH": "/usr/bin:/bin"})
    assert "replay" in completed.stdout.split(), completed.stdout + completed.stderr


def test_help_has_no_type_tags_and_every_main_command_shows_an_example():
    pages = {"": run_bookcast("--help")}
    pages.update({name: run_bookcast(name, "--help") for name in MAIN_COMMANDS})
    for name, proc in pages.items():
        assert proc.returncode == 0, (name, proc.stderr)
        tags = TYPE_TAG.findall(proc.stdout)
        assert not tags, f"bookcast {name} --help shows type tags {tags}"
        if name:
            assert f"Example: bookcast {name}" in " ".join(proc.stdout.split()), name
    assert "--version" in pages[""].stdout
    for name in ("collect", "serve"):  # -v says what it does
        line = next(ln for ln in pages[name].stdout.splitlines() if "--verbose" in ln)
        assert re.search(r"-v\s+[A-Za-z]", line), line


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_help_example_parses_against_the_real_options(name):
    """Every example in the help parses: the command path exists (groups such as
    `import tardis` included) and every option and value is accepted."""
    for example in EXAMPLES[name]:
        words = shlex.split(example)
        assert words[0] == "bookcast"
        command, rest = build_command(), words[1:]
        while hasattr(command, "commands") and rest and rest[0] in command.commands:
            command, rest = command.commands[rest[0]], rest[1:]
        assert command.name == name, f"{example!r} does not name `{name}`"
        command.make_context(name, rest)  # raises on an unknown option or a bad value
