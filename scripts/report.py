"""The reconciliation report of the last `dbt build` or `dbt test` (lifeos/report.py): `lifeos report`.

Exit status 0 only when every check passed, every v1 row is accounted for, and no loss is left unaccepted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lifeos_env
from lifeos import command, report
from lifeos.console import console
from lifeos.settings import Settings


def add_commands(commands: command.Commands) -> None:
    parser = command.add(commands, "report", run, description=report.__doc__, help="the reconciliation report")
    parser.add_argument("--target", type=Path, help="dbt's target folder (default: DBT_TARGET_PATH, else target/)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        report.run(settings, args.target)  # the run's vars: dbt's run_results.json's over the settings'

    except lifeos_env.MigrationError as error:
        console.print(f"[red]{error}[/red]")
        return 1
    return 0
