"""The command-line options several commands share (scripts/publish, scripts/migrate)."""

from __future__ import annotations

import argparse
import os

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
    """The option --app-role ROLE of scripts/publish and scripts/migrate, by default LIFEOS_APP_ROLE."""
    role = os.environ.get("LIFEOS_APP_ROLE") or None
    parser.add_argument("--app-role", metavar="ROLE", default=role, help=description)
