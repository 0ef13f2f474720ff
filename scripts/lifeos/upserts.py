"""Queries that write rows out as `insert ... on conflict do update` statements, one line per row."""

from __future__ import annotations

from psycopg2 import sql

from lifeos.catalog import Cursor, column_names


def upsert_statements(cur: Cursor, schema: str, table: str, rows: sql.Composed) -> sql.Composed:
    """Query of one `insert ... on conflict (<primary key>) do update` line per row of the query `rows`:
    a replay adds the rows the app created and puts back the ones it changed."""
    columns, key = column_names(cur, schema, table), column_names(cur, schema, table, key=True)
    return upsert_lines(cur, sql.SQL("quote_ident({})").format(sql.Literal(table)), columns, key, rows)


def upsert_lines(
    cur: Cursor,
    target: sql.Composable,
    columns: list[str],
    key: list[str],
    rows: sql.Composable,
    constants: dict[str, str] | None = None,
    order_by: list[str] | None = None,
) -> sql.Composed:
    """Query of one `insert into <target> ... on conflict (<key>) do update` line per row of the query `rows`
    (`target`: an expression giving the quoted table name): `columns` from the row, and `constants` (column ->
    value as text), the same in every row and only ever inserted, never updated."""
    constants = constants or {}
    listed = sql.SQL(", ").join(map(sql.Identifier, [*columns, *constants]))
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = excluded.{0}").format(sql.Identifier(column)) for column in columns if column not in key
    )
    on_conflict = sql.SQL(" on conflict ({}) do {}").format(
        sql.SQL(", ").join(map(sql.Identifier, key)),
        sql.SQL("update set {}").format(updates) if updates.seq else sql.SQL("nothing"),
    )
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
        sql.Literal(on_conflict.as_string(cur) if key else ""),
        rows,
        order,
    )
