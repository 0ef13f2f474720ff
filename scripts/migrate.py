"""Run the Life OS v1 -> v2 migration end to end on the target database.

The target is the database the libpq PG* variables name, or the embedded
PostgreSQL 16 when PGHOST is unset. Steps: restore the v1 dump into schema v1,
move the file blobs, build and test v2 with dbt in the shadow schema, publish
it as live v2, and report what reconciled. Exit status 0 only when every step
passed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console

import generate_sample
import lifeos_env
import make_supabase_dump
import move_files
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


def build_int_files() -> None:
    """Build int_files and everything it reads (seeds and views, no tests) for the files step."""
    dbt(
        "build",
        "--select",
        "+int_files",
        "--resource-type",
        "seed",
        "--resource-type",
        "model",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sample", action="store_true", help="migrate the bundled Supabase-shaped sample dump")
    source.add_argument("--dump", type=Path, metavar="FILE", help="migrate this pg_dump of v1 (plain, custom, CLI)")
    source.add_argument("--from-dsn", metavar="DSN", help="migrate a live v1 database, read over a read-only session")
    parser.add_argument("--scale", type=int, default=1, help="with --sample: a fresh sample dump at this scale")
    parser.add_argument(
        "--files-from",
        metavar="DIR|supabase",
        help="move the blobs from a folder or the bucket (default with --sample: its own)",
    )
    parser.add_argument(
        "--storage-root",
        type=Path,
        help="where the blobs go (LIFEOS_STORAGE_ROOT, default /opt/lifeos/storage/files)",
    )
    args = parser.parse_args(argv)
    if args.storage_root:
        os.environ["LIFEOS_STORAGE_ROOT"] = str(args.storage_root.absolute())
    try:
        lifeos_env.ensure_target()
        console.print(f"target: database {os.environ['PGDATABASE']} on {os.environ['PGHOST']}")
        with tempfile.TemporaryDirectory() as scratch:
            dump, files_from = args.dump, args.files_from
            if args.sample:
                dump = (
                    restore_v1.SAMPLE_DUMP if args.scale == 1 else make_supabase_dump.dump_sample(args.scale, scratch)
                )
                if files_from is None:
                    files_from = generate_sample.write_sample_blobs(args.scale, Path(scratch) / "blobs")
            restore_v1.restore(dump, args.from_dsn)
            if files_from:
                build_int_files()
                move_files.move(move_files.source_from(str(files_from), move_files.BUCKET), lifeos_env.storage_root())
        try:
            # unit tests check the SQL with fixed inputs, not the data: CI runs them (python_tests), and
            # dbt advises leaving them out of production runs
            dbt(
                "build",
                "--exclude-resource-type",
                "unit_test",
                "--vars",
                json.dumps({"files_checked": files_from is not None}),
            )
        finally:
            report.run()  # audits the shadow the build wrote, and says what failed when it did
        publish.publish()
    except lifeos_env.MigrationError as error:
        console.print(f"[red]migration failed: {error}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
