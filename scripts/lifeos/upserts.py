"""Queries that write rows out as `insert ... on conflict do update` statements, one line per row, and the
comment lines of the SQL files they go to."""

from __future__ import annotations

from psycopg2 import sql

from lifeos.catalog import Cursor, column_names


def upsert_statements(
    cur: Cursor, schema: str, table: str, rows: sql.Composed, order_by: list[str] | None = None
) -> sql.Composed:
    """Query of one `insert ... on conflict (<primary key>) do update` line per row of the query `rows`
    (in `order_by` order): a replay adds the rows the app created and puts back the ones it changed."""
    columns, key = column_names(cur, schema, table), column_names(cur, schema, table, key=True)
    target = sql.SQL("quote_ident({})").format(sql.Literal(table))
    return upsert_lines(cur, target, columns, key, rows, order_by=order_by)


def upsert_lines(
    cur: Cursor,
    target: sql.Composable,
    columns: list[str],
    key: list[str],
    rows: sql.Composable,
    constants: dict[str, str] | None = None,
    order_by: list[str] | None = None,
    changed: str | None = None,
) -> sql.Composed:
    """Query of one `insert into <target> ... on conflict (<key>) do update` line per row of the query `rows`
    (`target`: an expression giving the quoted table name): `columns` from the row, and `constants` (column ->
    value as text), the same in every row and only ever inserted, never updated. The update sets every column
    but the key, or with `changed`, the columns named by that text[] column of the row."""
    constants = constants or {}
    listed = sql.SQL(", ").join(map(sql.Identifier, [*columns, *constants]))
    updated = sql.SQL("t.{}").format(sql.Identifier(changed)) if changed else sql.Literal(
        [column for column in columns if column not in key])  # fmt: skip
    on_conflict = sql.SQL(
        "coalesce(' on conflict (' || {key} || ') do update set '"
        " || (select string_agg(format('%1$I = excluded.%1$I', c), ', ') from unnest({updated}::text[]) c),"
        " ' on conflict (' || {key} || ') do nothing')"
    ).format(key=sql.Literal(sql.SQL(", ").join(map(sql.Identifier, key)).as_string(cur)), updated=updated)
    values = [sql.SQL("quote_nullable(t.{})").format(sql.Identifier(column)) for column in columns]
    values += [sql.SQL("quote_literal({}::text)").format(sql.Literal(value)) for value in constants.values()]
    order = (
        sql.SQL(" order by {}").format(sql.SQL(", ").join(map(sql.Identifier, order_by))) if order_by else sql.SQL("")
    )
    return sql.SQL(
        "select format('insert into %s (%s) values (%s)%s;', {}, {}, concat_ws(', ', {}), {}) from ({}) t{}"
    ).format(
        target,
        sql.Literal(listed.as_string(cur)),
        sql.SQL(", ").join(values),
        on_conflict if key else sql.Literal(""),
        rows,
        order,
    )


def comment(text: str) -> str:
    """`text` as one SQL comment line psql reads as nothing else: each line break and backslash escaped, so
    that no name or value from v1, v2 or the command line starts a statement or a meta-command."""
    escaped = text.replace("\\", "\\\\").translate({code: f"\\x{code:02x}" for code in (*range(32), 127)})
    return f"-- {escaped}\n"
