"""How a command runs: its parser, the target resolved, the settings built once and passed to it.

Each command module (scripts/migrate.py, publish.py, report.py, export_ddl.py) adds its subcommands with
`add_commands(commands)`; each subcommand's parser names the function that runs it (`run(args, settings)`).
`lifeos` (lifeos/cli.py) gathers them all; scripts/migrate.py and scripts/publish.py also run their own.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable
from typing import Any

import lifeos_env
from lifeos import settings
from lifeos.settings import Settings

Run = Callable[[argparse.Namespace, Settings], int]
Commands = Any  # argparse's _SubParsersAction, which it does not export


def add(commands: Commands, name: str, run: Run, **parser: Any) -> argparse.ArgumentParser:
    """A subcommand `name` that `run` runs, its --help text formatted as written."""
    command = commands.add_parser(name, formatter_class=argparse.RawDescriptionHelpFormatter, **parser)
    command.set_defaults(run=run)
    return command


def parser(description: str, adders: Iterable[Callable[[Commands], None]]) -> argparse.ArgumentParser:
    """One parser of the subcommands the `adders` add."""
    top = argparse.ArgumentParser(
        prog="lifeos", description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_commands in adders:
        add_commands(commands)
    return top


def execute(args: argparse.Namespace) -> int:
    """Run the parsed subcommand: signals stop it cleanly, the target is resolved, the settings built once."""
    if getattr(args, "storage_root", None):  # before the target: the embedded default keeps a root it is given
        os.environ["LIFEOS_STORAGE_ROOT"] = str(args.storage_root.absolute())  # dbt's var storage_root reads it
    lifeos_env.stop_on_signals()
    lifeos_env.ensure_target()
    return args.run(args, settings.load())


def main(description: str, adders: Iterable[Callable[[Commands], None]], argv: list[str]) -> int:
    """Parse `argv` with the subcommands the `adders` add, and run the one it names."""
    return execute(parser(description, adders).parse_args(argv))
