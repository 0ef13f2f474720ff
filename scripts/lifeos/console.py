"""The one console the library and the commands print to."""

from __future__ import annotations

import sys

from rich.console import Console

# A one-line message stays one line; without a terminal (a log, CI), the report's table gets room for its columns.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
