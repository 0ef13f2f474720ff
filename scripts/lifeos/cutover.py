"""Publish and rollback: swap a schema in as live v2 in one guarded, backed-up transaction.

`publish`, in one transaction: locks the live tables against writes, refuses when they hold rows the app
created, changed or deleted since the last publish that `scripts/migrate --carry-forward` did not merge into
the build (unless force) or when the new v2 would shrink a table (unless allow_shrink), pg_dumps the live
schema into the backups folder and checks that the dump reads back, renames live -> v2_backup_<UTC time> and
shadow -> live, carries the app's own objects and schema changes and the replaced schema's owners and privileges
into the new live schema, makes the replaced one the operator's alone, grants the app's role its rights, and
installs the triggers that capture the app's writes. `rollback` swaps the newest backup schema back the same
way.
"""

from __future__ import annotations

from contextlib import closing
from functools import partial
from pathlib import Path

from psycopg2 import sql

import lifeos_env
import run_lock
from lifeos.app_objects import AppObjects, app_objects, carry_app_objects, inventory, parts
from lifeos.backups import (
    BACKUP_PREFIX,
    ROLLED_BACK_PREFIX,
    backup_dir,
    dump_schemas,
    fingerprint,
    removed_on_failure,
    stamp,
)
from lifeos.catalog import Cursor, holds_objects, row_counts, schema_exists, schemas_like, tables
from lifeos.console import console
from lifeos.grants import (
    access_warning,
    carry_over_owners,
    carry_over_privileges,
    grant_app_role,
    keep_for_the_operator,
)
from lifeos.guard import MergeLate, capture_changes, hold_live, refuse_shrink
from lifeos.runs import ANY_RUN, BUILDS, Run, finish_run, last_run, meta, new_run
from lifeos.settings import Settings
from lifeos.short_tries import LOCK_WAIT, recorded


def swap_in(
    cur: Cursor, incoming: str, live: str, outgoing: str, app_role: str | None, apps: AppObjects, action: str
) -> None:
    """Rename live -> outgoing and incoming -> live; extensions, the app's objects, owners and privileges follow
    the live name, and the outgoing schema is kept for the operator alone."""
    if schema_exists(cur, live):
        cur.execute(sql.SQL("alter schema {} rename to {}").format(sql.Identifier(live), sql.Identifier(outgoing)))
    cur.execute(sql.SQL("alter schema {} rename to {}").format(sql.Identifier(incoming), sql.Identifier(live)))
    cur.execute(
        "select e.extname, e.extrelocatable from pg_extension e join pg_namespace n on n.oid = e.extnamespace"
        " where n.nspname = %s",
        (outgoing,),
    )
    for extension, relocatable in cur.fetchall():
        if not relocatable:
            raise lifeos_env.MigrationError(f"extension {extension} lives in schema {live} and cannot move with it")
        cur.execute(sql.SQL("alter extension {} set schema {}").format(sql.Identifier(extension), sql.Identifier(live)))
    if schema_exists(cur, outgoing):
        carry_over_owners(cur, outgoing, live)  # first: the copy of a serial's sequence takes its table's owner
        carry_app_objects(cur, apps, outgoing, live, action)
        carry_over_privileges(cur, outgoing, live)
        keep_for_the_operator(cur, outgoing)
    if app_role:
        grant_app_role(cur, live, app_role)


def publishable_build(cur: Cursor, settings: Settings) -> Run:
    """The last build, when it is green, full and not yet published."""
    build = last_run(cur, settings, BUILDS)
    if build.result != "built" or not build.full_build:
        raise lifeos_env.MigrationError(
            f"nothing to publish: the last `dbt {build.command}` (run {build.run_id}) is {build.result}"
            + ("" if build.full_build else ", and not a full build")
            + "; publish follows a green full `dbt build` (scripts/migrate)"
        )
    cur.execute(
        sql.SQL("select max(run_id) from {} where build_run_id = %s and result = 'published'").format(
            meta(settings, "runs")
        ),
        (build.run_id,),
    )
    published_in = cur.fetchone()[0]
    if published_in:
        raise lifeos_env.MigrationError(
            f"nothing to publish: the last `dbt build` (run {build.run_id}) was published by run {published_in};"
            " build again (scripts/migrate)"
        )
    return build


def publish(
    settings: Settings,
    *,
    force: bool = False,
    backup_to: Path | None = None,
    allow_shrink: bool = False,
    app_role: str | None = None,
    lock_wait: float = LOCK_WAIT,
    merge_late: MergeLate | None = None,
) -> list[str]:
    """Publish the shadow of the last green, full `dbt build` as live v2.

    The backup goes into `backup_to`, else the settings' backups folder; the app's role is `app_role`, else the
    one the build recorded; `merge_late` merges the app's writes since a carry-forward under the publish's lock.
    Return notes for the report (an allowed shrink, no app
    role with access)."""
    with run_lock.one_run(settings, "publish"):
        with closing(lifeos_env.connect()) as conn, conn.cursor() as cur:
            build = publishable_build(cur, settings)
            run_id = new_run(cur, settings, "publish", build, build_run_id=build.run_id)
        live, shadow = build.schemas["live"], build.schemas["shadow"]
        options = {
            "force": force, "backup_to": backup_to or settings.backup_dir, "allow_shrink": allow_shrink,
            "app_role": app_role, "merge_late": merge_late,
        }  # fmt: skip
        dump_path, notes = recorded(
            settings, run_id, partial(publish_in, settings=settings, build=build, run_id=run_id, **options),
            lock_wait, [live],
        )  # fmt: skip
    console.print(f"published schema {shadow} as live v2 ({live})" + (f"; backup {dump_path}" if dump_path else ""))
    return notes


def publish_in(
    cur: Cursor,
    *,
    settings: Settings,
    build: Run,
    run_id: int,
    force: bool,
    backup_to: Path,
    allow_shrink: bool,
    app_role: str | None,
    merge_late: MergeLate | None,
) -> tuple[Path | None, list[str]]:
    """The publish transaction: guards, back up live v2, swap the shadow in; return the backup file and the
    notes for the report."""
    live, shadow = build.schemas["live"], build.schemas["shadow"]
    if not tables(cur, shadow):
        raise lifeos_env.MigrationError(f"the shadow schema {shadow} holds no tables: run `dbt build` again")
    apps = app_objects(cur, settings, live, shadow, "publish")
    hold_live(cur, settings, live, "publish", force, apps.tables, build, merge_late)
    notes = refuse_shrink(cur, settings, live, shadow, allow_shrink)
    cur.execute(
        sql.SQL("insert into {} (run_id, object) select %s, unnest(%s::text[])").format(
            meta(settings, "owned_objects")
        ),
        (run_id, [*inventory(cur, shadow), *parts(cur, shadow)]),
    )
    when = stamp()
    dump_path, dump_sha256 = (
        dump_schemas(cur, [live], backup_dir(backup_to), f"{live}_{when}") if holds_objects(cur, live) else (None, None)
    )
    with removed_on_failure(dump_path):
        backup = BACKUP_PREFIX + when
        swap_in(cur, shadow, live, backup, app_role or build.app_role, apps, "publish")
        kept = schema_exists(cur, backup)
        dumped = fingerprint(cur, backup) if kept and dump_path else None  # clean-up compares the backup with it
        notes += access_warning(cur, live)
        capture_changes(cur, settings, live)
        cur.execute("select oid from pg_namespace where nspname = %s", (live,))
        finish_run(
            cur, settings, run_id, result="published", published_schema_oid=cur.fetchone()[0],
            detail="; ".join([f"the shadow of build run {build.run_id} is live v2 ({live})", *notes]),
            backup_schema=backup if kept else None,
            dump_path=dump_path and str(dump_path), dump_sha256=dump_sha256, dump_fingerprint=dumped,
            table_counts=row_counts(cur, live),
        )  # fmt: skip
    return dump_path, notes


def rollback(settings: Settings, *, force: bool = False, lock_wait: float = LOCK_WAIT) -> str:
    """Make the newest backup schema live again; the replaced live schema is kept. Return the restored backup."""
    with run_lock.one_run(settings, "rollback"):
        with closing(lifeos_env.connect()) as conn, conn.cursor() as cur:
            template = last_run(cur, settings, ANY_RUN)
            backups = schemas_like(cur, BACKUP_PREFIX)
            if not backups:
                raise lifeos_env.MigrationError(f"nothing to roll back to: there is no {BACKUP_PREFIX}* schema")
            run_id = new_run(cur, settings, "rollback", template)
        live = template.schemas["live"]
        work = partial(
            roll_back_in, settings=settings, backup=backups[0], template=template, run_id=run_id, force=force
        )
        displaced = recorded(settings, run_id, work, lock_wait, [live, backups[0]])
    console.print(f"rolled back: {backups[0]} is live v2 ({live}) again; the replaced one is kept as {displaced}")
    return backups[0]


def roll_back_in(cur: Cursor, *, settings: Settings, backup: str, template: Run, run_id: int, force: bool) -> str:
    """The rollback transaction: guard, swap `backup` in; return the name the replaced live schema keeps."""
    live = template.schemas["live"]
    apps = app_objects(cur, settings, live, backup, "rollback")
    hold_live(cur, settings, live, "rollback", force, apps.tables)
    displaced = ROLLED_BACK_PREFIX + stamp()
    swap_in(cur, backup, live, displaced, template.app_role, apps, "rollback")
    capture_changes(cur, settings, live)  # a backup from before change capture gets it too
    finish_run(
        cur, settings, run_id, result="rolled back", backup_schema=displaced, table_counts=row_counts(cur, live),
        detail=f"{backup} is live v2 ({live}) again; the replaced live schema is kept as {displaced}",
    )  # fmt: skip
    return displaced
