"""The guard of live v2 and the capture of the app's writes.

Triggers on the live tables record each insert, update and delete the app makes in the ledger's change log
(with the row as it was before an update or delete); the guard reads that log to refuse a publish or rollback
that would undo writes not carried forward (ChangesWouldBeLost and its kinds), and a publish that would shrink
a table.
"""

from __future__ import annotations

from collections.abc import Callable

from psycopg2 import sql

import lifeos_env
from lifeos.catalog import DERIVED, Cursor, qualified, row_counts, tables
from lifeos.runs import Run, meta, published_by
from lifeos.settings import Settings

SHRINK_TOLERANCE = 0.05  # a table may lose up to this share of its published rows (rows deleted in v1) unasked
CAPTURE_TRIGGER = "lifeos_capture_changes"  # the triggers that record the app's writes, <name>_<insert|update|delete>


MergeLate = Callable[[Cursor, Run], object]  # lifeos/carry_forward.py merge_late, bound to the build's project


class ChangesWouldBeLost(lifeos_env.MigrationError):
    """Live v2 holds rows the app created, changed or deleted since the last publish."""


class LateChanges(ChangesWouldBeLost):
    """The app wrote to live v2 after its writes were merged into the shadow (scripts/migrate --carry-forward)."""


class WouldShrink(ChangesWouldBeLost):
    """The new v2 has far fewer rows than live v2 in a migrated table: rows would leave v2."""


def capture_changes(cur: Cursor, settings: Settings, schema: str) -> None:
    """Record every insert, update and delete on the tables of `schema` but the derived ones in the change log."""
    lifeos_env.create_meta_tables(cur, settings, "changes")
    events = {
        "insert": "new table as new_rows",
        "update": "old table as old_rows new table as new_rows",
        "delete": "old table as old_rows",
    }
    for table in tables(cur, schema):
        if table in DERIVED:
            continue
        for event, transition in events.items():
            cur.execute(
                sql.SQL(
                    "create or replace trigger {name} after {event} on {table} referencing {transition}"
                    " for each statement execute function {record}()"
                ).format(
                    name=sql.Identifier(f"{CAPTURE_TRIGGER}_{event}"),
                    event=sql.SQL(event),
                    table=qualified(schema, table),
                    transition=sql.SQL(transition),
                    record=meta(settings, "record_changes"),
                )
            )


def net_changes(settings: Settings, schema: str, unmerged_by: int | None = None) -> sql.Composed:
    """Query of each row of `schema` the app wrote since the schema was published (with `unmerged_by`, a build's
    run id: not yet merged into its shadow), once, with its table, id, kind ('changed': created or updated, and
    still there; 'deleted': published, now gone) and, when deleted, the row as it was. A row the app created and
    deleted again is not in it."""
    return sql.SQL(
        "select table_name, row_id, case when last_op = 'DELETE' then 'deleted' else 'changed' end as kind, old_row"
        " from (select table_name, row_id, (array_agg(operation order by change_id))[1] as first_op,"
        " (array_agg(operation order by change_id desc))[1] as last_op,"
        " (array_agg(old_row order by change_id desc))[1] as old_row"
        " from {changes} where schema_oid = (select oid from pg_namespace where nspname = {schema})"
        " {unmerged} group by table_name, row_id) as written"
        " where not (first_op = 'INSERT' and last_op = 'DELETE')"
    ).format(
        changes=meta(settings, "changes"),
        schema=sql.Literal(schema),
        unmerged=sql.SQL("and merged_into is distinct from {}").format(sql.Literal(unmerged_by))
        if unmerged_by
        else sql.SQL(""),
    )


def app_changes(
    cur: Cursor, settings: Settings, schema: str, unmerged_by: int | None = None
) -> dict[str, tuple[int, int]]:
    """Per table of `schema` the app wrote since it was published (with `unmerged_by`: not merged into that
    build's shadow): the rows it created or changed, and deleted."""
    cur.execute("select to_regclass(%s) is not null", (meta(settings, "changes").as_string(cur),))
    if not cur.fetchone()[0]:
        return {}
    if unmerged_by:
        lifeos_env.create_meta_tables(cur, settings, "changes")  # a log of an older version gets merged_into
    cur.execute(
        sql.SQL(
            "select table_name, count(*) filter (where kind = 'changed'), count(*) filter (where kind = 'deleted')"
            " from ({}) as net group by table_name order by table_name"
        ).format(net_changes(settings, schema, unmerged_by))
    )
    return {table: (changed, deleted) for table, changed, deleted in cur.fetchall()}


def hold_live(
    cur: Cursor,
    settings: Settings,
    live: str,
    action: str,
    force: bool,
    carried: list[str],
    build: Run | None = None,
    merge_late: MergeLate | None = None,
) -> None:
    """Lock the live tables against writes (reads go on), merge the app's writes since the carry-forward
    (`merge_late`, when scripts/migrate --carry-forward publishes), then refuse if the app changed any tables
    that do not stay live (the app's own tables, `carried`, do) and that were not merged into the shadow of
    `build` (a publish's build)."""
    live_tables = tables(cur, live)
    if live_tables:
        cur.execute(
            sql.SQL("lock table {} in exclusive mode").format(
                sql.SQL(", ").join(qualified(live, table) for table in live_tables)
            )
        )
    if merge_late and build:
        merge_late(cur, build)
    build = build and build.run_id
    changes = {table: rows for table, rows in app_changes(cur, settings, live, build).items() if table not in carried}
    if changes and not force and build and merged_any(cur, settings, live, build):
        raise LateChanges(
            f"the app wrote to live v2 (schema {live}) after its writes were carried into the shadow of build run"
            f" {build}: carry them forward again"
        )
    if changes and not force:
        counts = [
            f"{what} " + ", ".join(f"{table} {counts[kind]}" for table, counts in changes.items() if counts[kind])
            + " rows"
            for kind, what in enumerate(("created or changed", "deleted"))
            if any(counts[kind] for counts in changes.values())
        ]  # fmt: skip
        raise ChangesWouldBeLost(
            f"live v2 (schema {live}) holds the app's writes since the last migration, which {action} would"
            f" undo ({'; '.join(counts)}); "
            + ("carry them into the new v2 with `scripts/migrate --carry-forward`, " if action == "publish" else "")
            + f"export them with `scripts/publish export-changes`, or {action} anyway with"
            f" `scripts/publish {action} --force`"
        )


def merged_any(cur: Cursor, settings: Settings, live: str, build: int) -> bool:
    """Whether scripts/migrate --carry-forward merged writes of the app's to `live` into the shadow of `build`."""
    cur.execute(
        sql.SQL(
            "select exists (select from {} where merged_into = %s"
            " and schema_oid = (select oid from pg_namespace where nspname = %s))"
        ).format(meta(settings, "changes")),
        (build, live),
    )
    return cur.fetchone()[0]


def refuse_shrink(cur: Cursor, settings: Settings, live: str, shadow: str, allow: bool) -> list[str]:
    """Refuse (unless `allow`) when a table of `shadow` has far fewer rows than live v2 had when published, less
    the rows the app deleted since (the change log), or none where it had some (a table only live v2 has stays
    live). Return the note for the report when allowed."""
    run_id = published_by(cur, settings, live)
    before: dict[str, int] = {}
    if run_id is not None:
        cur.execute(sql.SQL("select table_counts from {} where run_id = %s").format(meta(settings, "runs")), (run_id,))
        published = cur.fetchone()[0] or {}
        deleted = {table: rows for table, (_, rows) in app_changes(cur, settings, live).items()}
        before = {table: rows - deleted.get(table, 0) for table, rows in published.items()}
    after = row_counts(cur, shadow)
    shrunk = [
        f"{table} {rows} -> {after[table]}"
        for table, rows in sorted(before.items())
        if table in after and rows and (after[table] == 0 or rows - after[table] > SHRINK_TOLERANCE * rows)
    ]
    if not shrunk:
        return []
    if not allow:
        raise WouldShrink(
            f"the new v2 would shrink live v2 (schema {live}): {', '.join(shrunk)} rows (more than"
            f" {SHRINK_TOLERANCE:.0%} fewer, or emptied); check the dump, or publish anyway with --allow-shrink"
        )
    return [f"published although v2 shrank (--allow-shrink): {', '.join(shrunk)} rows"]
