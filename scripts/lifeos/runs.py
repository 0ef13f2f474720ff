"""The run record: the ledger <meta_schema>.runs of builds, publishes, rollbacks and clean-ups.

`dbt build` records its verdict there (macros/migration_ledger.sql); a publish, rollback or clean-up records
its start at once (new_run) and its outcome in its own transaction (finish_run). This module is the ledger's
Python writer (carry_forward's merge pass aside, until it moves here).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg2 import sql
from psycopg2.extras import Json

import lifeos_env
from lifeos.catalog import Cursor
from lifeos.settings import Settings

BUILDS = ("build", "run")  # ledger commands that write the shadow schema
ANY_RUN = (*BUILDS, "publish", "rollback", "cleanup")


@dataclass
class Run:
    """One row of the ledger."""

    run_id: int
    command: str
    full_build: bool
    result: str
    schemas: dict[str, str]
    app_role: str | None


def meta(settings: Settings, name: str) -> sql.Composed:
    """A table of the migration's durable schema (var meta_schema)."""
    return sql.SQL("{}.{}").format(sql.Identifier(settings.meta_schema), sql.Identifier(name))


def has_table(cur: Cursor, settings: Settings, name: str) -> bool:
    """Whether the durable schema holds table `name` yet: the step that first writes it creates it."""
    cur.execute("select to_regclass(%s) is not null", (meta(settings, name).as_string(cur),))
    return cur.fetchone()[0]


def rows_of(cur: Cursor, settings: Settings, name: str, query: str, params: Sequence[object] = ()) -> list[tuple]:
    """The rows `query` reads from the durable schema's table `name` (its `{}`; `{runs}` is the ledger), or
    none while the table does not exist yet."""
    if not has_table(cur, settings, name):
        return []
    cur.execute(sql.SQL(query).format(meta(settings, name), runs=meta(settings, "runs")), params)
    return cur.fetchall()


def last_run(cur: Cursor, settings: Settings, commands: tuple[str, ...]) -> Run:
    """The newest ledger row of one of `commands`."""
    query = "select run_id, command, full_build, result, schemas, app_role from {} where command = any(%s)"
    found = rows_of(cur, settings, "runs", query + " order by run_id desc limit 1", (list(commands),))
    if not found:
        raise lifeos_env.MigrationError("no migration has run on this database: run scripts/migrate first")
    return Run(*found[0])


def git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=lifeos_env.ROOT, capture_output=True, text=True)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def new_run(cur: Cursor, settings: Settings, command: str, template: Run, build_run_id: int | None = None) -> int:
    """Record the start of a publish, rollback or clean-up, committed at once so a failure is recorded too."""
    cur.execute(
        sql.SQL(
            "insert into {} (command, schemas, app_role, build_run_id, result)"
            " values (%s, %s, %s, %s, 'running') returning run_id"
        ).format(meta(settings, "runs")),
        (command, Json(template.schemas), template.app_role, build_run_id),
    )
    run_id = cur.fetchone()[0]
    cur.connection.commit()
    return run_id


def finish_run(cur: Cursor, settings: Settings, run_id: int, **fields: object) -> None:
    fields = {"finished_at": datetime.now(UTC), "git_commit": git_commit(), **fields}
    cur.execute(
        sql.SQL("update {} set {} where run_id = %s").format(
            meta(settings, "runs"),
            sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in fields),
        ),
        [Json(value) if isinstance(value, dict) else value for value in fields.values()] + [run_id],
    )


def published_by(cur: Cursor, settings: Settings, schema: str) -> int | None:
    """The run that published `schema` (schema oids survive renames), if one did."""
    cur.execute(
        sql.SQL(
            "select max(run_id) from {} where published_schema_oid = (select oid from pg_namespace where nspname = %s)"
        ).format(meta(settings, "runs")),
        (schema,),
    )
    return cur.fetchone()[0]


def set_build_result(cur: Cursor, settings: Settings, run_id: int, result: str, detail: str | None) -> None:
    """Set the ledger's result of a build (the carry-forward's tests passed or failed on its shadow)."""
    cur.execute(
        sql.SQL("update {} set result = %s, detail = %s where run_id = %s").format(meta(settings, "runs")),
        (result, detail, run_id),
    )


def close_open_runs(cur: Cursor, settings: Settings, why: str) -> None:
    """Mark the ledger rows of runs that did not finish (still building or running) `interrupted`."""
    if has_table(cur, settings, "runs"):
        cur.execute(
            sql.SQL(
                "update {} set result = 'interrupted', finished_at = now(), detail = %s"
                " where result in ('building', 'running')"
            ).format(meta(settings, "runs")),
            (why,),
        )
