"""The command-line options several commands share (lifeos migrate, publish, rollback, cleanup)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lifeos.settings import DEFAULT_BACKUP_DIR
from lifeos.short_tries import LOCK_TRY, LOCK_WAIT


def add_lock_wait(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lock-wait",
        type=float,
        default=LOCK_WAIT,
        metavar="SECONDS",
        help=f"give up after this long waiting for the app's locks, in tries of {LOCK_TRY} (default {LOCK_WAIT:g})",
    )


def add_app_role_option(parser: argparse.ArgumentParser, description: str) -> None:
    """The option --app-role ROLE; without it, the command takes the settings' (LIFEOS_APP_ROLE)."""
    parser.add_argument("--app-role", metavar="ROLE", help=description)


def add_backup_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backup-dir",
        type=Path,
        help=f"folder of the pg_dump backups (LIFEOS_BACKUP_DIR, default {DEFAULT_BACKUP_DIR})",
    )
