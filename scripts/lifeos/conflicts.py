"""The conflicts table (<meta_schema>.conflicts): the app's writes to live v2 the carry-forward did not merge."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg2 import sql

from lifeos import runs
from lifeos.catalog import Cursor


@dataclass
class Conflict:
    """A write of the app's to live v2 that the carry-forward did not merge (lifeos/carry_forward.py)."""

    table: str
    row_id: str
    reason: str
    app_version: dict | None  # the row in live v2; None: the app deleted it
    v1_version: dict | None  # the row in the new v2; None: not there


def of_last_build(cur: Cursor) -> list[Conflict]:
    """The conflicts the carry-forward recorded for the newest full build."""
    if not runs.has_table(cur, "conflicts"):
        return []
    cur.execute(
        sql.SQL(
            "select table_name, row_id, reason, app_version, v1_version from {} where build_run_id ="
            " (select max(run_id) from {} where full_build) order by conflict_id"
        ).format(runs.meta("conflicts"), runs.meta("runs"))
    )
    return [Conflict(*row) for row in cur.fetchall()]
