"""Clean-up after the cut-over: drop the v1 copy, v2_work, dbt's test failures, the shadow, every backup
schema and the merge bases (v2_base_*), dumping first what no intact dump holds yet."""

from __future__ import annotations

from contextlib import closing
from functools import partial
from pathlib import Path

from psycopg2 import sql

import lifeos_env
import run_lock
from lifeos.backups import (
    BACKUP_PREFIX,
    ROLLED_BACK_PREFIX,
    backup_dir,
    changed_tables,
    dump_schemas,
    removed_on_failure,
    sha256,
    stamp,
)
from lifeos.catalog import Cursor, holds_objects, schema_exists, schemas_like, tables
from lifeos.console import console
from lifeos.guard import ChangesWouldBeLost
from lifeos.merge_base import BASE_PREFIX
from lifeos.runs import ANY_RUN, finish_run, last_run, meta, new_run
from lifeos.settings import Settings
from lifeos.short_tries import LOCK_WAIT, recorded

TEST_FAILURES_SCHEMA = "dbt_test__audit"  # where dbt stores failing test rows (store_failures), for scripts/report


def listed_dump(cur: Cursor, settings: Settings, schema: str) -> tuple[str, str, dict[str, str] | None] | None:
    """The dump the ledger lists for backup schema `schema` (taken when it was replaced): its path, checksum and
    the fingerprint of the rows it holds."""
    cur.execute(
        sql.SQL(
            "select dump_path, dump_sha256, dump_fingerprint from {} where backup_schema = %s"
            " and dump_path is not null order by run_id desc limit 1"
        ).format(meta(settings, "runs")),
        (schema,),
    )
    return cur.fetchone()


def kept_in(cur: Cursor, settings: Settings, schema: str) -> str | None:
    """The dump the ledger lists for backup schema `schema`, if the file is intact."""
    found = listed_dump(cur, settings, schema)
    return found[0] if found and intact(Path(found[0]), found[1]) else None


def changed_since_dumped(cur: Cursor, settings: Settings, schema: str) -> list[str]:
    """The tables of kept schema `schema` whose rows are not those its dump holds (the fingerprint the ledger
    took with the dump); none when the ledger has none (a dump of an older version)."""
    found = listed_dump(cur, settings, schema)
    return changed_tables(cur, schema, found[2]) if found and found[2] is not None else []


def intact(dump: Path, checksum: str) -> bool:
    """Whether the dump (file or folder) is there with the checksum the ledger lists."""
    try:
        return dump.exists() and sha256(dump) == checksum
    except OSError:  # a folder in the folder, a file we may not read
        return False


def cleanup_plan(cur: Cursor, settings: Settings, schemas: dict[str, str]) -> dict[str, str | None]:
    """Each schema clean-up would drop, with what keeps its rows; None: nothing yet, dump it first."""
    rebuilt = "rebuilt by dbt build"
    staging = {schemas["v1"]: "a copy of the v1 source", schemas["work"]: rebuilt, schemas["shadow"]: rebuilt}
    plan: dict[str, str | None] = {
        name: note for name, note in (staging | {TEST_FAILURES_SCHEMA: rebuilt}).items() if schema_exists(cur, name)
    }
    for name in schemas_like(cur, BACKUP_PREFIX) + schemas_like(cur, ROLLED_BACK_PREFIX):
        dump = kept_in(cur, settings, name)
        plan[name] = f"kept in {dump}" if dump else None if holds_objects(cur, name) else "empty"
    for name in schemas_like(cur, BASE_PREFIX):  # no carry-forward follows the cut-over
        plan[name] = "a merge base, a copy of a build"
    return plan


def listing(plan: dict[str, str | None]) -> str:
    return ", ".join(f"{name} ({kept or 'dumped first'})" for name, kept in plan.items())


def confirm(question: str) -> None:
    try:
        answer = input(question)
    except EOFError:
        raise lifeos_env.MigrationError("there is no terminal to ask on: pass --yes to clean up") from None
    if answer.strip() != "yes":
        raise lifeos_env.MigrationError("clean-up cancelled; nothing was dropped")


def cleanup(
    settings: Settings, *, yes: bool = False, backup_to: Path | None = None, lock_wait: float = LOCK_WAIT
) -> dict[str, str]:
    """Drop the v1 copy, v2_work, dbt's test failures, the shadow and every backup schema, once v2 is live.

    A backup or rolled-back schema whose rows no intact dump of the ledger holds is dumped first, into
    `backup_to`, else the settings' backups folder.
    Return each schema dropped, with what keeps its rows.
    """
    with run_lock.one_run(settings, "cleanup"):
        with closing(lifeos_env.connect()) as conn, conn.cursor() as cur:
            template = last_run(cur, settings, ANY_RUN)
            schemas = template.schemas
            if not tables(cur, schemas["live"]):
                raise lifeos_env.MigrationError(
                    f"live v2 (schema {schemas['live']}) is empty: publish before cleaning up"
                )
            plan = cleanup_plan(cur, settings, schemas)
            if not plan:
                console.print("nothing to clean up")
                return {}
            if not yes:
                confirm(f"Drop schemas {listing(plan)} with everything in them? Type yes to go on: ")
            run_id = new_run(cur, settings, "cleanup", template)
        drop = partial(
            drop_schemas, settings=settings, plan=plan, run_id=run_id, backup_to=backup_to or settings.backup_dir
        )
        done = recorded(settings, run_id, drop, lock_wait, list(plan))
    console.print(f"dropped {listing(done)}")
    return done


def drop_schemas(
    cur: Cursor, *, settings: Settings, plan: dict[str, str | None], run_id: int, backup_to: Path
) -> dict[str, str]:
    """The clean-up transaction: refuse when a kept schema differs from its dump, dump what no dump keeps yet,
    then drop the schemas of `plan`."""
    for name, kept in plan.items():
        changed = changed_since_dumped(cur, settings, name) if kept and kept.startswith("kept in ") else []
        if changed:
            raise ChangesWouldBeLost(
                f"schema {name} differs from its dump ({kept}) in {', '.join(changed)}: it was written after the"
                f" backup; save what it holds (scripts/publish export-changes --schema {name}, or pg_dump), drop it"
                " by hand, then clean up again"
            )
    unkept = [name for name, kept in plan.items() if kept is None]
    dump_path, dump_sha256 = (
        dump_schemas(cur, unkept, backup_dir(backup_to), f"cleanup_{stamp()}") if unkept else (None, None)
    )
    with removed_on_failure(dump_path):
        done = {name: kept or f"kept in {dump_path}" for name, kept in plan.items()}
        for name in done:
            cur.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(name)))
        lifeos_env.create_meta_tables(cur, settings, "changes")
        cur.execute(
            sql.SQL("delete from {} where schema_oid not in (select oid from pg_namespace)").format(
                meta(settings, "changes")
            )
        )
        finish_run(
            cur, settings, run_id, result="cleaned up", detail="dropped " + listing(done),
            dump_path=dump_path and str(dump_path), dump_sha256=dump_sha256,
        )  # fmt: skip
    return done
