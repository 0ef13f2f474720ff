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
the new build first (scripts/lifeos/carry_forward.py), tests it again, and publishes
it with the conflicts listed in the report.

dbt runs in this process, and the project is parsed once for every dbt step.
Each step shows a progress bar; dbt's whole log is in logs/dbt.log, and
--verbose streams it too.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from psycopg2 import sql

import generate_sample
import lifeos_env
import make_supabase_dump
import run_lock
from lifeos import carry_forward, command, cutover, dbt_runner, grants, options, report, runs
from lifeos.console import console
from lifeos.dbt_runner import NO_ARTIFACTS, NO_UNIT_TESTS, dbt
from lifeos.files import step as files_step
from lifeos.project import Project
from lifeos.restore.command import restore as restore_dump
from lifeos.restore.contract import SAMPLE_DUMP
from lifeos.settings import DEFAULT_STORAGE_ROOT, Settings

if TYPE_CHECKING:
    from dbt.contracts.graph.manifest import Manifest


def build_int_files(*args: str, manifest: Manifest | None = None) -> None:
    """Build int_files and everything it reads (seeds, staging views and int_ tables; no tests) for the files step."""
    dbt(
        "build",
        NO_ARTIFACTS,
        "--select",
        "+int_files",
        "--resource-type",
        "seed",
        "--resource-type",
        "model",
        *args,
        manifest=manifest,
    )


def v1_files_rows(settings: Settings) -> int:
    """Rows of the restored v1 files table."""
    with lifeos_env.transaction() as cur:
        cur.execute(sql.SQL("select count(*) from {}.files").format(sql.Identifier(settings.v1_schema)))
        return cur.fetchone()[0]


def add_commands(commands: command.Commands) -> None:
    parser = command.add(commands, "migrate", run, description=__doc__, help="the whole migration, v1 to live v2")
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
        help=f"where the blobs go (LIFEOS_STORAGE_ROOT, default {DEFAULT_STORAGE_ROOT})",
    )
    parser.add_argument(
        "--accept-rejects",
        action="store_true",
        help="accept the known losses (rejected rows, blobs missing at the source); they stay listed as accepted",
    )
    options.add_app_role_option(
        parser, "the app's database role: publish grants it what the app needs (LIFEOS_APP_ROLE)"
    )
    parser.add_argument(
        "--allow-shrink",
        action="store_true",
        help="publish even when a table of live v2 would lose rows or be emptied (the report says so)",
    )
    # --carry-forward merges the app's writes into a build it publishes: never with --no-publish
    publishing = parser.add_mutually_exclusive_group()
    publishing.add_argument(
        "--no-publish",
        action="store_true",
        help="rehearsal: stop after the report; the build stays publishable with `scripts/publish publish`",
    )
    publishing.add_argument(
        "--carry-forward",
        action="store_true",
        help="merge the rows the app created, changed or deleted in live v2 into the new v2 before publishing;"
        " what conflicts is left out and listed in the report and lifeos_migration.conflicts",
    )
    options.add_lock_wait(parser)
    parser.add_argument(
        "--verbose", action="store_true", help="stream dbt's log as it runs (it is always in logs/dbt.log)"
    )


def main(argv: list[str] | None = None) -> int:
    """`scripts/migrate ARGS`, as `lifeos migrate ARGS`."""
    return command.main(__doc__, [add_commands], ["migrate", *(sys.argv[1:] if argv is None else argv)])


def run(args: argparse.Namespace, settings: Settings) -> int:
    dbt_runner.VERBOSE = args.verbose  # read by every dbt step of the run
    try:
        console.print(f"target: database {settings.database} on {settings.host}")
        with run_lock.one_run(settings, "migrate", settings.storage_root):
            migrate(args, settings)
    except lifeos_env.MigrationError as error:
        console.print(f"[red]migration failed: {error}[/red]")
        return 1
    return 0


def migrate(args: argparse.Namespace, settings: Settings) -> None:
    """Restore, files, build, report and publish (not with --no-publish), under the run lock."""
    app_role = args.app_role or settings.app_role
    if app_role:
        with lifeos_env.transaction() as cur:
            grants.check_role(cur, app_role)
    with tempfile.TemporaryDirectory() as scratch:
        dump, files_from = args.dump, args.files_from
        if args.sample:
            dump = SAMPLE_DUMP if args.scale == 1 else make_supabase_dump.dump_sample(args.scale, scratch)
            if files_from is None:
                files_from = generate_sample.write_sample_blobs(args.scale, Path(scratch) / "blobs")
        # every dbt step runs with the same vars, so one parse serves them all (files_checked is read at parse time)
        settings = settings.with_vars(
            files_checked=files_from is not None,
            accept_rejects=args.accept_rejects,
            **({"app_role": app_role} if app_role else {}),  # recorded with the build for its publish
        )
        with_vars = settings.dbt_vars()
        manifest = dbt_runner.parse(settings, *with_vars)
        restore_dump(settings, dump, args.from_dsn)
        notes = files_not_moved(settings, files_from is not None, args.skip_files)
        if files_from:
            build_int_files(*with_vars, manifest=manifest)
            files_step.move(
                files_step.source_from(str(files_from), settings.storage_bucket), settings.storage_root, settings
            )
    try:
        dbt("build", *NO_UNIT_TESTS, *with_vars, manifest=manifest)
    finally:
        if not isinstance(sys.exc_info()[1], lifeos_env.Interrupted):  # a stopped run stops here
            reconciled = report.run(settings)  # audits the shadow the build wrote, and says what failed when it did
    report.note(reconciled, notes, settings.target)
    if args.no_publish:
        console.print(
            f"rehearsal: nothing published; the build in schema {settings.marts_schema} is kept"
            " for review (dbt docs) and `scripts/publish publish`",
            soft_wrap=True,
        )
        return
    if not args.carry_forward:
        report.note(
            reconciled,
            cutover.publish(settings, allow_shrink=args.allow_shrink, lock_wait=args.lock_wait),
            settings.target,
        )
        return
    project = Project.from_manifest(manifest)
    reconciled = carry_app_writes(settings, manifest, project, reconciled, args.lock_wait)
    late = carry_forward.merge_late  # the writes the app made meanwhile, merged under the publish's lock
    report.note(
        reconciled,
        cutover.publish(
            settings,
            allow_shrink=args.allow_shrink,
            lock_wait=args.lock_wait,
            merge_late=lambda cur, build: late(cur, settings, build, project),
        ),
        settings.target,
    )


def carry_app_writes(
    settings: Settings,
    manifest: Manifest,
    project: Project,
    reconciled: report.Report,
    lock_wait: float,
) -> report.Report:
    """Merge the app's writes to live v2 into the shadow of the last build, and when anything changed, run the
    tests on the merged shadow again (the build's vars and manifest: its marts_schema); return its report."""
    with lifeos_env.transaction() as cur:
        build = runs.last_run(cur, settings, runs.BUILDS)
    try:
        merged = carry_forward.merge(settings, build, project, lock_wait)
        if not (merged.carried or merged.conflicts):
            return reconciled
        dbt("test", *NO_UNIT_TESTS, *settings.dbt_vars(), manifest=manifest)
        reconciled = report.run(settings)
    except lifeos_env.Interrupted as error:  # not publishable: the next run merges again
        with lifeos_env.transaction() as cur:
            runs.set_build_result(
                cur, settings, build.run_id, "interrupted", f"{error} while carrying the app's writes forward"
            )
        raise
    except lifeos_env.MigrationError as error:
        detail = f"the tests failed on the shadow after carrying the app's writes forward: {error}"
        with lifeos_env.transaction() as cur:
            runs.set_build_result(cur, settings, build.run_id, "build failed", detail)
        report.run(settings)  # names the failing rows
        raise
    with lifeos_env.transaction() as cur:
        runs.set_build_result(cur, settings, build.run_id, "built", None)  # publishable again
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
    report.note(reconciled, notes, settings.target)
    return reconciled


def files_not_moved(settings: Settings, files_given: bool, skip_files: bool) -> list[str]:
    """Stop when v1 has files rows and no files step will move their blobs, unless --skip-files says so."""
    if files_given:
        return []
    rows = v1_files_rows(settings)
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
