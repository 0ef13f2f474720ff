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
import json
import os
import sys
import tempfile
import threading
from pathlib import Path

from dbt.cli.main import dbtRunner, dbtRunnerResult
from dbt.contracts.graph.manifest import Manifest
from dbt_common.events.base_types import EventMsg
from psycopg2 import sql
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

import generate_sample
import lifeos_env
import make_supabase_dump
import report
import restore_v1
import run_lock
from lifeos import carry_forward, cutover, grants, options, runs
from lifeos.files import step as files_step
from lifeos.project import Project

console = Console(soft_wrap=True)  # a one-line message stays one line
VERBOSE = False  # --verbose: dbt's log on the terminal as it runs, besides logs/dbt.log
# unit tests check the SQL with fixed inputs, not the data: CI runs them (python_tests), and
# dbt advises leaving them out of production runs
NO_UNIT_TESTS = ("--exclude-resource-type", "unit_test")


def dbt(*args: str, manifest: Manifest | None = None) -> dbtRunnerResult:
    """Run one dbt command in this process, in the project, with a progress bar of its nodes; raise when it fails.

    dbt's whole log goes to logs/dbt.log (dbt's log path). The terminal gets the bar, dbt's warnings and errors
    (a failing node's message in full) and the project's own log lines (e.g. UNMAPPED v1 columns); with
    --verbose, dbt's log as it runs. Given the `manifest` of a `dbt parse` with the same vars, dbt does not
    parse the project again. A manifest serves one build of the marts: that build rewrites each foreign key's
    `to: ref(...)` in it into the relation's name, which a second build of the marts refuses.
    """
    command = ["dbt", *args]
    console.print(f"[bold]$ {' '.join(command)}[/bold]")
    log_level = [] if VERBOSE else ["--log-level", "none"]  # the terminal's; the log file keeps every line
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, TextColumn("{task.fields[running]}"), console=console) as progress:
        runner = dbtRunner(manifest=manifest, callbacks=[NodeProgress(progress, " ".join(command[:2]))])
        result = runner.invoke([*args, *lifeos_env.dbt_project_args(), *log_level])
    if isinstance(result.exception, lifeos_env.Interrupted):
        raise result.exception
    if not result.success:
        raise lifeos_env.MigrationError(f"`{' '.join(command)}` failed; its output above names the model or test")
    return result


class NodeProgress:
    """dbtRunner callback: one progress bar of the invocation's nodes (done out of total, the one started last
    and still running), and, but with --verbose, dbt's warnings and errors and the project's log lines."""

    def __init__(self, progress: Progress, description: str) -> None:
        self.progress = progress
        self.bar = progress.add_task(description, total=None, running="")
        self.running: dict[str, str] = {}  # unique_id -> name of each node running now, in the order they started
        self.counted: set[str] = set()  # the nodes in dbt's total that started
        self.lock = threading.Lock()  # dbt calls back from its worker threads

    def __call__(self, event: EventMsg) -> None:
        name, data = event.info.name, event.data
        if name == "LogStartLine":  # a node dbt counts (an ephemeral model is compiled into others, never run)
            with self.lock:
                self.counted.add(data.node_info.unique_id)
            self.progress.update(self.bar, total=data.total)
        elif name in ("NodeStart", "NodeFinished"):
            with self.lock:
                if name == "NodeStart":
                    self.running[data.node_info.unique_id] = data.node_info.node_name
                else:
                    self.running.pop(data.node_info.unique_id, None)
                    if data.node_info.unique_id in self.counted:
                        self.progress.advance(self.bar)
                self.progress.update(self.bar, running=next(reversed(self.running.values()), ""))
        elif not VERBOSE and shown(event):  # as dbt words it: its own warnings start with [WARNING]
            self.progress.console.print(Text.from_ansi(event.info.msg), soft_wrap=True)


def shown(event: EventMsg) -> bool:
    """Whether the terminal gets a dbt event without --verbose: a line the project logs (`log(..., info=True)`),
    a warning, or an error but for the Python stack of a stop."""
    name, level = event.info.name, event.info.level
    return name == "JinjaLogInfo" or (level in ("warn", "error") and name != "MainStackTrace")


def build_int_files(*args: str, manifest: Manifest | None = None) -> None:
    """Build int_files and everything it reads (seeds, staging views and int_ tables; no tests) for the files step."""
    dbt(
        "build",
        "--select",
        "+int_files",
        "--resource-type",
        "seed",
        "--resource-type",
        "model",
        *args,
        manifest=manifest,
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
    options.add_app_role_option(
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
    options.add_lock_wait(parser)
    parser.add_argument(
        "--verbose", action="store_true", help="stream dbt's log as it runs (it is always in logs/dbt.log)"
    )
    args = parser.parse_args(argv)
    if args.carry_forward and args.no_publish:
        parser.error("--carry-forward merges the app's writes into a build it publishes: drop --no-publish")
    return args


def main(argv: list[str] | None = None) -> int:
    global VERBOSE  # read by every dbt step of the run
    args = parse(argv)
    VERBOSE = args.verbose
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
            grants.check_role(cur, args.app_role)
    with tempfile.TemporaryDirectory() as scratch:
        dump, files_from = args.dump, args.files_from
        if args.sample:
            dump = restore_v1.SAMPLE_DUMP if args.scale == 1 else make_supabase_dump.dump_sample(args.scale, scratch)
            if files_from is None:
                files_from = generate_sample.write_sample_blobs(args.scale, Path(scratch) / "blobs")
        # every dbt step runs with the same vars, so one parse serves them all (files_checked is read at parse time)
        dbt_vars = {"files_checked": files_from is not None, "accept_rejects": args.accept_rejects}
        with_vars = ("--vars", json.dumps(dbt_vars | app_role_var(args)))
        manifest = dbt("parse", *with_vars).result
        restore_v1.restore(dump, args.from_dsn)
        notes = files_not_moved(files_from is not None, args.skip_files)
        if files_from:
            build_int_files(*with_vars, manifest=manifest)
            files_step.move(files_step.source_from(str(files_from), files_step.BUCKET), lifeos_env.storage_root())
    try:
        dbt("build", *NO_UNIT_TESTS, *with_vars, manifest=manifest)
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
        report.note(reconciled, cutover.publish(allow_shrink=args.allow_shrink, lock_wait=args.lock_wait))
        return
    project = Project.from_manifest(manifest)
    reconciled = carry_app_writes(with_vars, manifest, project, reconciled, args.lock_wait)
    late = carry_forward.merge_late  # the writes the app made meanwhile, merged under the publish's lock
    report.note(
        reconciled,
        cutover.publish(
            allow_shrink=args.allow_shrink,
            lock_wait=args.lock_wait,
            merge_late=lambda cur, build: late(cur, build, project),
        ),
    )


def carry_app_writes(
    with_vars: tuple[str, ...],
    manifest: Manifest,
    project: Project,
    reconciled: report.Report,
    lock_wait: float,
) -> report.Report:
    """Merge the app's writes to live v2 into the shadow of the last build, and when anything changed, run the
    tests on the merged shadow again (the build's vars and manifest: its marts_schema); return its report."""
    with lifeos_env.transaction() as cur:
        build = runs.last_run(cur, runs.BUILDS)
    try:
        merged = carry_forward.merge(build, project, lock_wait)
        if not (merged.carried or merged.conflicts):
            return reconciled
        dbt("test", *NO_UNIT_TESTS, *with_vars, manifest=manifest)
        reconciled = report.run()
    except lifeos_env.Interrupted as error:  # not publishable: the next run merges again
        mark_build(build.run_id, "interrupted", f"{error} while carrying the app's writes forward")
        raise
    except lifeos_env.MigrationError as error:
        detail = f"the tests failed on the shadow after carrying the app's writes forward: {error}"
        mark_build(build.run_id, "build failed", detail)
        report.run()  # names the failing rows
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
            sql.SQL("update {} set result = %s, detail = %s where run_id = %s").format(runs.meta("runs")),
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
