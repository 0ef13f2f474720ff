"""The one console the library and the commands print to."""

from __future__ import annotations

from rich.console import Console

console = Console(soft_wrap=True)  # a one-line message stays one line
