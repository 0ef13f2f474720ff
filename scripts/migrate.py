"""Run the Life OS v1 -> v2 migration end to end on the target database.

The target is the database the libpq PG* variables name, or the embedded
PostgreSQL 16 when PGHOST is unset. Steps: restore the v1 dump into schema v1,
move the file blobs, build and test v2 with dbt in the shadow schema, report
what reconciled, and publish it as live v2. Exit status 0 only when every step
passed; nothing is published after a failed step.

Known losses (rows v2 rejects, blobs missing at the source) stop the run
before publishing, each named, unless --accept-rejects accepts them on purpose.
--no-publish stops after the report (a rehearsal): `scripts/publish publish`
publishes that build later. When the app wrote to live v2 since the last
publish, the publish stops, unless --carry-forward merges the app's writes into
the new build first (scripts/carry_forward.py), tests it again, and publishes
it with the conflicts listed in the report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from psycopg2 import sql
from rich.console import Console

import carry_forward
import generate_sample
import lifeos_env
import make_supabase_dump
import move_files
import publish
import report
import restore_v1
import run_lock

console = Console(soft_wrap=True)  # a one-line message stays one line
CARRY_TRIES = 3  # merges, each followed by a publish that finds the app wrote in between, before giving up


def dbt(*args: str) -> None:
    """Run one dbt command in the project; raise when it fails."""
    command = ["dbt", *args]
    console.print(f"[bold]$ {' '.join(command)}[/bold]")
    if lifeos_env.run_child(command, cwd=lifeos_env.ROOT, env=os.environ.copy()).returncode != 0:
        raise lifeos_env.MigrationError(f"`{' '.join(command)}` failed; its output above names the model or test")


def build_int_files() -> None:
    """Build int_files and everything it reads (seeds, staging views and int_ tables; no tests) for the files step."""
    dbt(
        "build",
        "--select",
        "+int_files",
        "--resource-type",
        "seed",
        "--resource-type",
        "model",
    )


def v1_files_rows() -> int:
    """Rows of the restored v1 files table."""
    with lifeos_env.transaction() as cur:
        cur.execute(sql.SQL("select count(*) from {}.files").format(sql.Identifier(lifeos_env.dbt_var("v1_schema"))))
        return cur.fetchone()[0]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sample", action="store_true", help="migrate the bundled Supabase-shaped sample dump")
    source.add_argument("--dump", type=Path, metavar="FILE", help="migrate this pg_dump of v1 (plain, custom, CLI)")
    source.add_argument("--from-dsn", metavar="DSN", help="migrate a live v1 database, read over a read-only session")
    parser.add_argument("--scale", type=int, default=1, help="with --sample: a fresh sample dump at this scale")
    files = parser.add_mutually_exclusive_group()
    files.add_argument(
        "--files-from",
        metavar="DIR|supabase",
        help="move the blobs from a folder or the bucket (default with --sample: its own)",
    )
    files.add_argument(
        "--skip-files",
        action="store_true",
        help="migrate without moving the blobs: files.storage_path points at nothing; check 4 is not checked",
    )
    parser.add_argument(
        "--storage-root",
        type=Path,
        help="where the blobs go (LIFEOS_STORAGE_ROOT, default /opt/lifeos/storage/files)",
    )
    parser.add_argument(
        "--accept-rejects",
        action="store_true",
        help="accept the known losses (rejected rows, blobs missing at the source); they stay listed as accepted",
    )
    publish.add_app_role_option(
        parser, "the app's database role: publish grants it what the app needs (LIFEOS_APP_ROLE)"
    )
    parser.add_argument(
        "--allow-shrink",
        action="store_true",
        help="publish even when a table of live v2 would lose rows or be emptied (the report says so)",
    )
    parser.add_argument(
        "--no-publish",
        action="store_true",
        help="rehearsal: stop after the report; the build stays publishable with `scripts/publish publish`",
    )
    parser.add_argument(
        "--carry-forward",
        action="store_true",
        help="merge the rows the app created, changed or deleted in live v2 into the new v2 before publishing;"
        " what conflicts is left out and listed in the report and lifeos_migration.conflicts",
    )
    publish.add_lock_wait(parser)
    args = parser.parse_args(argv)
    if args.carry_forward and args.no_publish:
        parser.error("--carry-forward merges the app's writes into a build it publishes: drop --no-publish")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.storage_root:
        os.environ["LIFEOS_STORAGE_ROOT"] = str(args.storage_root.absolute())
    lifeos_env.stop_on_signals()
    try:
        lifeos_env.ensure_target()
        console.print(f"target: database {os.environ['PGDATABASE']} on {os.environ['PGHOST']}")
        with run_lock.one_run("migrate", lifeos_env.storage_root()):
            migrate(args)
    except lifeos_env.MigrationError as error:
        console.print(f"[red]migration failed: {error}[/red]")
        return 1
    return 0


def migrate(args: argparse.Namespace) -> None:
    """Restore, files, build, report and publish (not with --no-publish), under the run lock."""
    if args.app_role:
        with lifeos_env.transaction() as cur:
            publish.check_role(cur, args.app_role)
    with tempfile.TemporaryDirectory() as scratch:
        dump, files_from = args.dump, args.files_from
        if args.sample:
            dump = restore_v1.SAMPLE_DUMP if args.scale == 1 else make_supabase_dump.dump_sample(args.scale, scratch)
            if files_from is None:
                files_from = generate_sample.write_sample_blobs(args.scale, Path(scratch) / "blobs")
        restore_v1.restore(dump, args.from_dsn)
        notes = files_not_moved(files_from is not None, args.skip_files)
        if files_from:
            build_int_files()
            move_files.move(move_files.source_from(str(files_from), move_files.BUCKET), lifeos_env.storage_root())
    dbt_vars = {"files_checked": files_from is not None, "accept_rejects": args.accept_rejects}
    try:
        # unit tests check the SQL with fixed inputs, not the data: CI runs them (python_tests), and
        # dbt advises leaving them out of production runs
        dbt("build", "--exclude-resource-type", "unit_test", "--vars", json.dumps(dbt_vars | app_role_var(args)))
    finally:
        if not isinstance(sys.exc_info()[1], lifeos_env.Interrupted):  # a stopped run stops here
            reconciled = report.run()  # audits the shadow the build wrote, and says what failed when it did
    report.note(reconciled, notes)
    if args.no_publish:
        console.print(
            f"rehearsal: nothing published; the build in schema {lifeos_env.dbt_var('marts_schema')} is kept"
            " for review (dbt docs) and `scripts/publish publish`",
            soft_wrap=True,
        )
        return
    if not args.carry_forward:
        report.note(reconciled, publish.publish(allow_shrink=args.allow_shrink, lock_wait=args.lock_wait))
        return
    for attempt in range(1, CARRY_TRIES + 1):
        reconciled = carry_app_writes(dbt_vars | app_role_var(args), reconciled)
        try:
            report.note(reconciled, publish.publish(allow_shrink=args.allow_shrink, lock_wait=args.lock_wait))
            return
        except publish.LateChanges:
            if attempt == CARRY_TRIES:
                raise
            console.print("the app wrote to live v2 during the carry-forward: carrying its new writes forward too")


def carry_app_writes(dbt_vars: dict[str, object], reconciled: report.Report) -> report.Report:
    """Merge the app's writes to live v2 (those not merged yet) into the shadow of the last build, and when
    anything changed, run the tests on the merged shadow again; return its report."""
    with lifeos_env.transaction() as cur:
        build = publish.last_run(cur, publish.BUILDS)
    merged = carry_forward.merge(build)
    if not (merged.carried or merged.conflicts):
        return reconciled
    try:
        dbt(
            "test", "--exclude-resource-type", "unit_test",
            "--vars", json.dumps(dbt_vars | {"marts_schema": build.schemas["shadow"]}),
        )  # fmt: skip
        reconciled = report.run()
    except lifeos_env.MigrationError as error:
        detail = f"the tests failed on the shadow after carrying the app's writes forward: {error}"
        mark_build(build.run_id, "build failed", detail)
        raise
    mark_build(build.run_id, "built", None)  # publishable again
    carried = "; ".join(
        f"{table} " + ", ".join(f"{rows} {action}" for action, rows in actions.items())
        for table, actions in merged.carried.items()
    )
    notes = [f"carried the app's writes to live v2 forward: {carried or 'none'}"]
    if merged.conflicts:
        notes.append(
            f"{len(merged.conflicts)} of the app's writes conflict with v1's and were not carried forward: listed"
            " in the report's conflicts and in lifeos_migration.conflicts, with both versions"
        )
    report.note(reconciled, notes)
    return reconciled


def mark_build(run_id: int, result: str, detail: str | None) -> None:
    """Set the ledger's result of a build."""
    with lifeos_env.transaction() as cur:
        cur.execute(
            sql.SQL("update {} set result = %s, detail = %s where run_id = %s").format(publish.meta("runs")),
            (result, detail, run_id),
        )


def app_role_var(args: argparse.Namespace) -> dict[str, str]:
    """The dbt var app_role, recorded with the build for its publish; only when a role is named."""
    return {"app_role": args.app_role} if args.app_role else {}


def files_not_moved(files_given: bool, skip_files: bool) -> list[str]:
    """Stop when v1 has files rows and no files step will move their blobs, unless --skip-files says so."""
    if files_given:
        return []
    rows = v1_files_rows()
    if rows and not skip_files:
        raise lifeos_env.MigrationError(
            f"v1 has {rows} files rows and no --files-from DIR|supabase was given, so their blobs would not be"
            " moved; name the blobs' source with --files-from, or migrate without them with --skip-files"
        )
    if rows:
        return [f"files step skipped (--skip-files): the blobs of {rows} files rows were not moved"]
    return []


if __name__ == "__main__":
    sys.exit(main())
