"""Run the Life OS v1 -> v2 migration end to end on the target database.

The target is the database the libpq PG* variables name, or the embedded
PostgreSQL 16 when PGHOST is unset. Steps: load v1 into the v1 schema, build
and test v2 with dbt, and print the rows per v2 table. Exit status 0 only when
every step passed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from psycopg2 import sql
from rich.console import Console
from rich.table import Table

import lifeos_env
import make_supabase_dump
import publish
import report
import restore_v1

console = Console()


def dbt(*args: str) -> None:
    """Run one dbt command in the project; raise when it fails."""
    command = ["dbt", *args]
    console.print(f"[bold]$ {' '.join(command)}[/bold]")
    if subprocess.run(command, cwd=lifeos_env.ROOT, env=os.environ.copy()).returncode != 0:
        raise lifeos_env.MigrationError(f"`{' '.join(command)}` failed; its output above names the model or test")


def v2_row_counts(schema: str) -> list[tuple[str, int]]:
    with lifeos_env.transaction() as cur:
        cur.execute(
            "select table_name from information_schema.tables where table_schema = %s order by table_name", (schema,)
        )
        tables = [name for (name,) in cur.fetchall()]
        counts = []
        for name in tables:
            cur.execute(sql.SQL("select count(*) from {}.{}").format(sql.Identifier(schema), sql.Identifier(name)))
            counts.append((name, cur.fetchone()[0]))
    return counts


def print_summary(schema: str) -> None:
    table = Table(title=f"v2 rows per table (schema {schema})")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, count in v2_row_counts(schema):
        table.add_row(name, str(count))
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sample", action="store_true", help="migrate the bundled Supabase-shaped sample dump")
    source.add_argument("--dump", type=Path, metavar="FILE", help="migrate this pg_dump of v1 (plain, custom, CLI)")
    source.add_argument("--from-dsn", metavar="DSN", help="migrate a live v1 database, read over a read-only session")
    parser.add_argument("--scale", type=int, default=1, help="with --sample: a fresh sample dump at this scale")
    args = parser.parse_args(argv)
    try:
        lifeos_env.ensure_target()
        console.print(f"target: database {os.environ['PGDATABASE']} on {os.environ['PGHOST']}")
        with tempfile.TemporaryDirectory() as scratch:
            dump = args.dump
            if args.sample:
                dump = (
                    restore_v1.SAMPLE_DUMP if args.scale == 1 else make_supabase_dump.dump_sample(args.scale, scratch)
                )
            restore_v1.restore(dump, args.from_dsn)
        try:
            dbt("build", "--vars", "{files_checked: false}")  # no files step yet: the report says "not checked"
            print_summary(publish.publish())
        finally:
            report.run()
    except lifeos_env.MigrationError as error:
        console.print(f"[red]migration failed: {error}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
