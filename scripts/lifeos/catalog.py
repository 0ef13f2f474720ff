"""What the server's catalog says about a schema: its tables, columns, keys, row counts and foreign-key order."""

from __future__ import annotations

import graphlib

import psycopg2.extensions
from psycopg2 import sql

Cursor = psycopg2.extensions.cursor
Connection = psycopg2.extensions.connection
# Derived tables: rebuilt from the others (refresh_search_index()), so the backup holds no rows of theirs and the
# guard records no writes to them.
DERIVED = ("search_index", "search_index_queue")


def tables(cur: Cursor, schema: str) -> list[str]:
    cur.execute(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relkind in ('r', 'p') and not c.relispartition order by 1",
        (schema,),
    )
    return [name for (name,) in cur.fetchall()]


def schemas_like(cur: Cursor, prefix: str) -> list[str]:
    """Schemas whose name starts with prefix, newest (highest time suffix) first."""
    cur.execute(
        "select nspname from pg_namespace where starts_with(nspname, %s) order by nspname desc",
        (prefix,),
    )
    return [name for (name,) in cur.fetchall()]


def schema_exists(cur: Cursor, schema: str) -> bool:
    cur.execute("select count(*) from pg_namespace where nspname = %s", (schema,))
    return cur.fetchone()[0] == 1


def qualified(schema: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def row_counts(cur: Cursor, schema: str) -> dict[str, int]:
    """Rows per table of `schema`."""
    counts = {}
    for table in tables(cur, schema):
        cur.execute(sql.SQL("select count(*) from {}").format(qualified(schema, table)))
        counts[table] = cur.fetchone()[0]
    return counts


def holds_objects(cur: Cursor, schema: str) -> bool:
    """Whether `schema` holds anything of its own (tables, views, sequences, functions, types), extensions aside."""
    cur.execute(
        "select exists (select from ("
        " select 'pg_class'::regclass, oid from pg_class where relnamespace = n.oid"
        " union all select 'pg_proc'::regclass, oid from pg_proc where pronamespace = n.oid"
        " union all select 'pg_type'::regclass, oid from pg_type"
        "  where typnamespace = n.oid and typrelid = 0 and typcategory <> 'A'"
        ") o (classid, objid) where not exists (select from pg_depend d"
        "  where d.classid = o.classid and d.objid = o.objid and d.deptype = 'e'))"
        " from pg_namespace n where n.nspname = %s",
        (schema,),
    )
    found = cur.fetchone()
    return bool(found and found[0])


def in_foreign_key_order(cur: Cursor, schema: str, names: list[str]) -> list[str]:
    """`names`, each table after the tables of `schema` its foreign keys reference."""
    cur.execute(
        "select t.relname, r.relname from pg_constraint c"
        " join pg_class t on t.oid = c.conrelid join pg_class r on r.oid = c.confrelid"
        " where c.contype = 'f' and t.relnamespace = %s::regnamespace",
        (sql.Identifier(schema).as_string(cur),),
    )
    graph: dict[str, set[str]] = {name: set() for name in names}
    for child, parent in cur.fetchall():
        if child in graph and parent in graph and child != parent:
            graph[child].add(parent)
    return list(graphlib.TopologicalSorter(graph).static_order())


def column_names(cur: Cursor, schema: str, table: str, *, key: bool = False) -> list[str]:
    """The columns a statement can write (generated ones aside), or with key, the primary key's."""
    cur.execute(
        "select a.attname from pg_attribute a left join pg_index i on i.indrelid = a.attrelid and i.indisprimary"
        " where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''"
        " and (not %s or a.attnum = any(i.indkey)) order by a.attnum",
        (qualified(schema, table).as_string(cur), key),
    )
    return [name for (name,) in cur.fetchall()]


def self_references(cur: Cursor, schema: str, table: str) -> list[str]:
    """The columns of schema.table whose foreign key references the table itself (a task's parent_id)."""
    cur.execute(
        "select a.attname from pg_constraint c join pg_attribute a on a.attrelid = c.conrelid"
        " and a.attnum = any(c.conkey) where c.contype = 'f' and c.conrelid = %s::regclass"
        " and c.confrelid = c.conrelid and cardinality(c.conkey) = 1 order by 1",
        (qualified(schema, table).as_string(cur),),
    )
    return [name for (name,) in cur.fetchall()]
