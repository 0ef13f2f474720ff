"""Plan 8.3: the rows the app created, changed or deleted in live v2 since its publish, as CSV files and a
changes.sql that replays them (or, with to_v1, what v1 lacks of live v2 as SQL in v1's shape: export_to_v1)."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from psycopg2 import sql

import lifeos_env
from lifeos.backups import backup_dir, private_file, private_folder, stamp
from lifeos.catalog import Cursor, in_foreign_key_order, qualified, schema_exists, self_references
from lifeos.console import console
from lifeos.export_to_v1 import export_to_v1, write_v1_files
from lifeos.guard import app_changes, net_changes
from lifeos.runs import ANY_RUN, last_run
from lifeos.settings import Settings
from lifeos.short_tries import SESSION_OPTIONS
from lifeos.upserts import comment, upsert_statements


def export_changes(
    settings: Settings, out: Path | None = None, schema: str | None = None, to_v1: bool = False
) -> dict[str, tuple[int, int]]:
    """Write every row of live v2 (or `schema`) the app created, changed or deleted since its publish.

    Into the new private folder `out` (default: changes_<database>_<time> in the backups folder):
    <table>.csv of the rows created or changed as they are now, <table>.deleted.csv of the rows deleted as
    they were (from the change log), both with a header, and changes.sql, one transaction that replays them:
    upserts in foreign-key order (parents first within a table), then deletes in the reverse order. Return the
    rows per table: (created or changed, deleted). With `to_v1`, to_v1.sql instead: what v1 lacks of live v2,
    from state (export_to_v1), and the rows per v1 table: (to insert or update, to delete).
    """
    with closing(lifeos_env.connect(options=SESSION_OPTIONS)) as conn, conn.cursor() as cur:
        source = schema or last_run(cur, settings, ANY_RUN).schemas["live"]
        if not schema_exists(cur, source):
            raise lifeos_env.MigrationError(f"there is no schema {source} to export from")
        if to_v1:
            writes = export_to_v1(conn, settings, source)
        else:
            changes = app_changes(cur, settings, source)
            if not changes:
                console.print(f"no rows in schema {source} were created, changed or deleted since it was published")
                return changes
        folder = private_folder(
            out or backup_dir(settings.backup_dir) / f"changes_{settings.database}_{stamp()}",
            "export folder",
            "choose one with --out",
        )
        if any(folder.iterdir()):
            raise lifeos_env.MigrationError(f"the folder {folder} is not empty: export into a new one")
        try:
            if to_v1:
                summary = write_v1_files(writes, source, folder, settings.database)
            else:
                write_changes(cur, settings, source, changes, folder)
                total = sum(changed + deleted for changed, deleted in changes.values())
                summary = f"wrote {total} rows of schema {source} the app created, changed or deleted to {folder}"
        except OSError as error:
            raise lifeos_env.MigrationError(f"cannot write the export to {folder}: {error.strerror}") from error
    console.print(summary)
    return writes.per_table if to_v1 else changes


def write_changes(
    cur: Cursor, settings: Settings, source: str, changes: dict[str, tuple[int, int]], folder: Path
) -> None:
    """The CSV files, and changes.sql: one transaction that replays them all, or nothing."""
    ordered = in_foreign_key_order(cur, source, list(changes))
    steps = [(table, "changed", f"{table}.csv") for table in ordered if changes[table][0]]
    steps += [(table, "deleted", f"{table}.deleted.csv") for table in reversed(ordered) if changes[table][1]]
    with private_file(folder / "changes.sql", "w") as statements:
        statements.write(comment(f"the app's writes to schema {source} after the migration published it") + "begin;\n")
        for table, kind, name in steps:
            query = written_rows(settings, source, table, kind)
            with private_file(folder / name, "w") as csv:
                cur.copy_expert(sql.SQL("copy ({}) to stdout with (format csv, header)").format(query), csv)
            cur.execute(replay_statements(cur, source, table, query, kind))
            statements.writelines(line + "\n" for (line,) in cur.fetchall())
        statements.write("commit;\n")


def written_rows(settings: Settings, schema: str, table: str, kind: str) -> sql.Composed:
    """Query of the rows of schema.table the app created or changed (kind 'changed') as they are now, or
    deleted (kind 'deleted') as they were."""
    rows = sql.SQL("select * from ({}) as net where table_name = {} and kind = {}").format(
        net_changes(settings, schema), sql.Literal(table), sql.Literal(kind)
    )
    if kind == "changed":
        return sql.SQL("select t.* from {} t where t.id::text in (select row_id from ({}) as written)").format(
            qualified(schema, table), rows
        )
    return sql.SQL("select r.* from ({}) as written, jsonb_populate_record(null::{}, written.old_row) as r").format(
        rows, qualified(schema, table)
    )


def replay_statements(cur: Cursor, schema: str, table: str, rows: sql.Composed, kind: str) -> sql.Composed:
    """Query of the SQL lines that replay the app's writes: an upsert per created or changed row, parents
    first, `delete from <table> where id = ...;` per deleted one, children first (in_tree_order)."""
    ordered = in_tree_order(rows, self_references(cur, schema, table))
    if kind == "deleted":
        return sql.SQL(
            "select format('delete from %I where id = %L;', {}, t.id) from ({}) t order by t.replay_depth desc"
        ).format(sql.Literal(table), ordered)
    return upsert_statements(cur, schema, table, ordered, order_by=["replay_depth"])


def in_tree_order(rows: sql.Composed, parents: list[str]) -> sql.Composed:
    """Query of `rows` with replay_depth: how many of them stand above each through the columns `parents` (the
    table's references to itself), 0 for a row whose parents are not among them, so that a replay writes a
    parent before the rows under it (a task renamed after its subtask was created)."""
    if not parents:
        return sql.SQL("select *, 0 as replay_depth from ({}) t").format(rows)
    return sql.SQL(
        "with recursive written as ({rows}), depths as ("
        " select w.id, 0 as depth from written w where not exists (select from written p where {roots})"
        " union all select w.id, d.depth + 1 from written w join depths d on {linked}"
        " where d.depth < (select count(*) from written))"  # a cycle among old rows ends too
        " select written.*, coalesce((select max(depth) from depths where depths.id = written.id), 0)"
        " as replay_depth from written"
    ).format(
        rows=rows,
        roots=sql.SQL(" or ").join(sql.SQL("p.id = w.{}").format(sql.Identifier(c)) for c in parents),
        linked=sql.SQL(" or ").join(sql.SQL("d.id = w.{}").format(sql.Identifier(c)) for c in parents),
    )
