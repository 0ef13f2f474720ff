"""The merge bases of the parallel run: schema v2_base_<run id>, the shadow of a green full build as v1 alone
produced it, kept by the build itself (macros/merge_base.sql) for as long as a schema it published exists;
the base of the next carry-forward (lifeos/carry_forward.py). Clean-up drops them all."""

from __future__ import annotations

from psycopg2 import sql

import lifeos_env
from lifeos import catalog, runs
from lifeos.catalog import Cursor
from lifeos.settings import Settings

BASE_PREFIX = "v2_base_"


def of_live(cur: Cursor, settings: Settings, live: str) -> str | None:
    """The merge base of `live`: the kept build of the run whose shadow became it (None: it holds no v2)."""
    if not catalog.tables(cur, live):
        return None
    cur.execute(
        sql.SQL("select build_run_id from {} where run_id = %s").format(runs.meta(settings, "runs")),
        (runs.published_by(cur, settings, live),),
    )
    found = cur.fetchone()
    base = found and found[0] and f"{BASE_PREFIX}{found[0]}"
    if not base or not catalog.schema_exists(cur, base):
        raise lifeos_env.MigrationError(
            f"live v2 (schema {live}) has no merge base ({base or 'it was not published by a build'}): it was"
            " published before merge bases were kept; publish once without --carry-forward (export the app's"
            " writes first with `scripts/publish export-changes`)"
        )
    return base
