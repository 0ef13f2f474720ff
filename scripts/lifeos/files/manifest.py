"""The outcome of every blob: the table lifeos_migration.file_manifest (the rows of the last run, replaced
atomically), the same rows as JSON, and the lines the console shows. Details are redacted where they are
made (Secret.describe); whatever reaches the terminal is made safe for it (redact.terminal)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from psycopg2.extras import execute_values

import lifeos_env
from lifeos.console import console
from lifeos.files.blobs import Entry
from lifeos.files.plan import manifest_table
from lifeos.files.redact import terminal
from lifeos.settings import Settings

COLUMNS = ["file_id", "object_key", "local_path", "size_bytes", "sha256", "md5", "status", "detail"]


def write_manifest(entries: list[Entry], json_path: Path, settings: Settings) -> None:
    """Replace the manifest table's rows in one transaction, and write the same rows as JSON."""
    rows = [row for entry in entries for row in entry.rows()]
    with lifeos_env.transaction() as cur:
        lifeos_env.create_meta_tables(cur, settings, "file_manifest")
        cur.execute(f"delete from {manifest_table(settings)}")
        execute_values(
            cur,
            f"insert into {manifest_table(settings)} ({', '.join(COLUMNS)}) values %s",
            [tuple(row[c] for c in COLUMNS) for row in rows],
        )
    json_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = json_path.with_name(json_path.name + ".part")
    temporary.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    os.replace(temporary, json_path)


def say(text: str, style: str | None = None) -> None:
    """One line on the console, as it is: no markup, no wrapping, no control character."""
    console.print(terminal(text), style=style, markup=False, highlight=False, soft_wrap=True)


def print_entries(title: str, entries: list[Entry]) -> None:
    """One line per blob (status, key, local path, detail)."""
    say(title)
    for e in entries:
        say(
            f"  {e.status:<8} {e.object_key!r} -> {e.local_path or '(nowhere)'}"
            + (f"  ({e.detail})" if e.detail else "")
        )
