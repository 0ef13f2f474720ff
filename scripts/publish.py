"""Cut-over of live v2: publish a green build, roll back, export the app's changes, clean up.

`dbt build` writes v2 into the empty shadow schema and records its verdict in
the ledger (<meta_schema>.runs, macros/migration_ledger.sql). `publish` then,
in one transaction: locks the live tables against writes, refuses when they
hold rows the app created, changed or deleted since the last publish that
`scripts/migrate --carry-forward` did not merge into the build (unless --force)
or when the new v2 would shrink a table (unless --allow-shrink),
pg_dumps the live schema into the backups folder (a folder in pg_dump's
directory format, written by parallel jobs) and checks that the dump reads
back, renames live -> v2_backup_<UTC time> and shadow -> live, carries the app's
own objects (alembic_version, its tables, views, functions), what its migrations
added to v2's tables (columns with their values, constraints, indexes, triggers,
policies) and the replaced schema's owners and privileges into the new live
schema, leaves the backup to the operator alone, grants the app's role its rights,
and installs triggers on the live tables that record each insert, update and
delete the app makes in the ledger (with the row as it was before an update or
delete), which is how the next publish, rollback, export or carry-forward knows
the app's writes. Rollback swaps the same way. scripts/migrate.py
calls publish() right after its `dbt build`.

    publish          publish the shadow of the last green `dbt build`
    rollback         make the newest v2_backup_* schema live again
    export-changes   write the rows the app created, changed or deleted since the last publish, as CSV and SQL;
                     with --to-v1, as SQL in v1's shape for v1's database (a rollback to v1)
    cleanup          drop the v1 copy, v2_work, dbt_test__audit, the shadow and every backup schema (asks, or --yes);
                     a backup schema no dump holds yet is dumped first
    restore-backup   restore a backup dump into a new database, search_index's rows rebuilt
    resolve          write the app's or v1's version of a conflict of the parallel run into live v2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lifeos_env
from lifeos import backups, cleanup, command, conflicts, cutover, export_changes, options
from lifeos.console import console
from lifeos.settings import Settings


def add_commands(commands: command.Commands) -> None:
    publishing = command.add(commands, "publish", run, help="publish the shadow of the last green dbt build")
    publishing.add_argument("--force", action="store_true", help="replace rows the app changed (they are backed up)")
    publishing.add_argument(
        "--allow-shrink", action="store_true", help="publish even when a table would lose rows or be emptied"
    )
    options.add_app_role_option(
        publishing, "the app's role to grant (LIFEOS_APP_ROLE; default: the one the build recorded)"
    )
    options.add_backup_dir(publishing)
    rolling = command.add(commands, "rollback", run, help="make the newest backup schema live again")
    rolling.add_argument("--force", action="store_true", help="roll back over rows the app changed")
    for waiting in (publishing, rolling):
        options.add_lock_wait(waiting)
    exporting = command.add(
        commands, "export-changes", run, help="write the rows the app created or changed, as CSV and SQL"
    )
    exporting.add_argument("--out", type=Path, help="folder to write (default: under the backups folder)")
    exporting.add_argument("--schema", help="schema to export from (default: live v2)")
    exporting.add_argument(
        "--to-v1", action="store_true", help="write them as SQL in v1's shape, for v1's database (to_v1.sql)"
    )
    cleaning = command.add(commands, "cleanup", run, help="drop the staging, shadow and backup schemas")
    cleaning.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    options.add_backup_dir(cleaning)
    options.add_lock_wait(cleaning)
    restoring = command.add(commands, "restore-backup", run, help="restore a backup dump into a new database")
    restoring.add_argument(
        "dump",
        type=Path,
        metavar="DUMP",
        help="a dump the ledger lists (dump_path): a folder, or an older backup's file",
    )
    restoring.add_argument(
        "--into",
        required=True,
        metavar="DATABASE",
        help="the name of a new database to restore into (no connection string)",
    )
    resolving = command.add(commands, "resolve", run, help="write the app's or v1's version of a conflict into live v2")
    resolving.add_argument("conflict_id", type=int, metavar="ID", help="its conflict_id in lifeos_migration.conflicts")
    resolving.add_argument("--take", required=True, choices=sorted(conflicts.SIDES), help="whose version")


def main(argv: list[str] | None = None) -> int:
    """`scripts/publish COMMAND ARGS`, as `lifeos COMMAND ARGS`."""
    return command.main(__doc__, [add_commands], sys.argv[1:] if argv is None else argv)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        if args.command == "publish":
            notes = cutover.publish(
                settings, force=args.force, backup_to=args.backup_dir, allow_shrink=args.allow_shrink,
                app_role=args.app_role or settings.app_role, lock_wait=args.lock_wait,
            )  # fmt: skip
            for note in notes:  # scripts/migrate prints them with its report instead (report.note)
                console.print(f"[yellow]note: {note}[/yellow]", markup=True, highlight=False)
        elif args.command == "rollback":
            cutover.rollback(settings, force=args.force, lock_wait=args.lock_wait)
        elif args.command == "export-changes":
            export_changes.export_changes(settings, args.out, args.schema, args.to_v1)
        elif args.command == "cleanup":
            cleanup.cleanup(settings, yes=args.yes, backup_to=args.backup_dir, lock_wait=args.lock_wait)
        elif args.command == "resolve":
            console.print(conflicts.resolve(settings, args.conflict_id, args.take))
        else:
            backups.restore_backup(args.dump, args.into)
    except lifeos_env.MigrationError as error:
        console.print(f"[red]{args.command} failed: {error}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
