"""The conflicts of the parallel run (<meta_schema>.conflicts): the rows the merge of scripts/migrate
--carry-forward left as v1 has them, with the app's version and v1's kept whole; read for the report, and
resolved with `scripts/publish resolve ID --take app|v1`.

Resolving writes the chosen version into live v2 as the app would (its change capture records the write, so the
next carry-forward keeps it: it differs from the merge base), or deletes the row when that version is "no row";
the conflict is marked resolved.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2
from psycopg2 import sql
from psycopg2.extras import Json

import lifeos_env
from lifeos import catalog, runs, short_tries
from lifeos.catalog import Cursor
from lifeos.settings import Settings

SIDES = {"app": "app_version", "v1": "v1_version"}


@dataclass
class Conflict:
    """A write of the app's to live v2 that the carry-forward did not merge (lifeos/carry_forward.py)."""

    table: str
    row_id: str
    reason: str
    app_version: dict | None  # the row in live v2; None: the app deleted it
    v1_version: dict | None  # the row in the new v2; None: not there


def of_last_build(cur: Cursor, settings: Settings) -> list[Conflict]:
    """The conflicts the carry-forward recorded for the newest full build."""
    query = "select table_name, row_id, reason, app_version, v1_version from {} where build_run_id ="
    query += " (select max(run_id) from {runs} where full_build) order by conflict_id"
    return [Conflict(*row) for row in runs.rows_of(cur, settings, "conflicts", query)]


def resolve(settings: Settings, conflict_id: int, take: str) -> str:
    """Write version `take` (app or v1) of conflict `conflict_id` into live v2; return what was done. When
    live v2 cannot hold it (a unique key, a missing parent), nothing is written and the error says why."""
    try:
        return write_version(settings, conflict_id, take)
    except psycopg2.Error as error:
        message = str(error).strip().splitlines()[0]
        raise lifeos_env.MigrationError(
            f"live v2 cannot take {take}'s version of conflict {conflict_id}: {message}"
        ) from error


def write_version(settings: Settings, conflict_id: int, take: str) -> str:
    live = settings.v2_schema
    with lifeos_env.transaction() as cur:
        cur.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(short_tries.LOCK_TRY)))
        cur.execute(
            sql.SQL("select table_name, row_id, {}, resolved_with from {} where conflict_id = %s for update").format(
                sql.Identifier(SIDES[take]), runs.meta(settings, "conflicts")
            ),
            (conflict_id,),
        )
        found = cur.fetchone()
        if found is None:
            raise lifeos_env.MigrationError(f"there is no conflict {conflict_id} in {settings.meta_schema}.conflicts")
        table, row_id, version, resolved = found
        if resolved:
            raise lifeos_env.MigrationError(f"conflict {conflict_id} was resolved already, with {resolved}'s version")
        target = catalog.qualified(live, table)
        if version is None:
            cur.execute(sql.SQL("delete from {} where id::text = %s").format(target), (row_id,))
            done = f"deleted {table} {row_id} from live v2 ({take}'s version: no row)"
        else:
            columns = [name for name in catalog.column_names(cur, live, table) if name in version]
            names = sql.SQL(", ").join(map(sql.Identifier, columns))
            cur.execute(
                sql.SQL(
                    "insert into {target} ({names}) select {names} from jsonb_populate_record(null::{target}, %s)"
                    " on conflict (id) do update set ({names}) = row({excluded})"
                ).format(
                    target=target,
                    names=names,
                    excluded=sql.SQL(", ").join(sql.SQL("excluded.{}").format(sql.Identifier(c)) for c in columns),
                ),
                (Json(version),),
            )
            done = f"wrote {take}'s version of {table} {row_id} into live v2"
        cur.execute(
            sql.SQL("update {} set resolved_with = %s, resolved_at = now() where conflict_id = %s").format(
                runs.meta(settings, "conflicts")
            ),
            (take, conflict_id),
        )
    return done
