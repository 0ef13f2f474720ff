"""The app's own objects in live v2 (alembic_version, its tables, views, functions): what the migration does not
own, found by inventory against the incoming schema, and carried into the new live schema by a swap."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg2 import sql

from lifeos.catalog import Cursor, qualified
from lifeos.guard import CAPTURE_TRIGGER, ChangesWouldBeLost
from lifeos.runs import meta, published_by

# The objects of a schema a publish or rollback swaps, oldest first: relations (not indexes, not those a column or
# an extension owns) by name, routines by name(argument types); each with its oid and kind in words.
INVENTORY = """
select c.oid, c.relname::text, case c.relkind when 'v' then 'view' when 'm' then 'materialized view'
    when 'S' then 'sequence' when 'f' then 'foreign table' when 'c' then 'type' else 'table' end
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %(schema)s and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f', 'c') and not c.relispartition
    and not exists (select from pg_depend d
        where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype in ('a', 'e', 'i'))
union all
select p.oid, format('%%s(%%s)', p.proname, pg_get_function_identity_arguments(p.oid)), case p.prokind
    when 'f' then 'function' when 'p' then 'procedure' when 'a' then 'aggregate' else 'window function' end
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname = %(schema)s and not exists (select from pg_depend d
        where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
order by 1
"""


# What else of the app's a swap would leave behind in schema %(live)s: its types, and its triggers (not the
# change capture's, which every publish installs) and indexes on the tables the swap replaces (those %(incoming)s
# holds too).
LEFT_BEHIND = """
select format('type %%I', t.typname)
from pg_type t join pg_namespace n on n.oid = t.typnamespace
where n.nspname = %(live)s and t.typtype in ('e', 'd', 'r', 'm')
    and not exists (select from pg_depend d
        where d.classid = 'pg_type'::regclass and d.objid = t.oid and d.deptype = 'e')
    and not exists (select from pg_type i
        where i.typnamespace = to_regnamespace(%(incoming)s) and i.typname = t.typname)
union all
select format('trigger %%I on %%I', g.tgname, c.relname)
from pg_trigger g join pg_class c on c.oid = g.tgrelid join pg_namespace n on n.oid = c.relnamespace
    join pg_class i on i.relnamespace = to_regnamespace(%(incoming)s) and i.relname = c.relname
where n.nspname = %(live)s and not g.tgisinternal and not starts_with(g.tgname, %(capture)s)
    and not exists (select from pg_trigger ig where ig.tgrelid = i.oid and ig.tgname = g.tgname)
union all
select format('index %%I on %%I', x.relname, c.relname)
from pg_index ix join pg_class x on x.oid = ix.indexrelid join pg_class c on c.oid = ix.indrelid
    join pg_namespace n on n.oid = c.relnamespace
    join pg_class i on i.relnamespace = to_regnamespace(%(incoming)s) and i.relname = c.relname
where n.nspname = %(live)s
    and not exists (select from pg_class ix2 where ix2.relnamespace = i.relnamespace and ix2.relname = x.relname)
order by 1
"""


CARRIED_KINDS = ("table", "sequence", "view", "function", "procedure")


@dataclass
class AppObjects:
    """What the app keeps in live v2 that the migration does not own, carried into the new live schema."""

    tables: list[str]  # moved, with their rows, indexes, triggers and owned sequences
    sequences: list[str]  # standalone ones, moved
    foreign_keys: list[tuple[str, str, str]]  # table, constraint, definition naming the tables it references bare
    statements: list[str]  # CREATE FUNCTION / PROCEDURE / VIEW and ALTER ... OWNER, naming tables bare, in order


def inventory(cur: Cursor, schema: str) -> dict[str, tuple[int, str]]:
    """Name -> (oid, kind) of each object of `schema` a swap moves with it (INVENTORY)."""
    cur.execute(INVENTORY, {"schema": schema})
    return {name: (oid, kind) for oid, name, kind in cur.fetchall()}


def owned_objects(cur: Cursor, schema: str) -> set[str]:
    """The objects the migration put in `schema` when it published it (none when it did not)."""
    cur.execute(
        sql.SQL("select object from {} where run_id = %s").format(meta("owned_objects")), (published_by(cur, schema),)
    )
    return {name for (name,) in cur.fetchall()}


def app_objects(cur: Cursor, live: str, incoming: str, action: str) -> AppObjects:
    """The app's objects in `live`: neither the migration's nor in `incoming` (alembic_version, its tables,
    views and functions). Refuses, naming each, when any of the app's objects cannot be carried over."""
    theirs = set(inventory(cur, incoming)) | owned_objects(cur, live)
    mine = {name: found for name, found in inventory(cur, live).items() if name not in theirs}
    cur.execute(LEFT_BEHIND, {"live": live, "incoming": incoming, "capture": CAPTURE_TRIGGER})
    stuck = [f"{kind} {name}" for name, (_, kind) in mine.items() if kind not in CARRIED_KINDS]
    stuck += [name for (name,) in cur.fetchall()]
    if stuck:
        raise ChangesWouldBeLost(
            f"live v2 (schema {live}) holds objects the migration does not own that {action} cannot carry over:"
            f" {', '.join(stuck)}; move or drop them, then {action} again"
        )
    tables = [name for name, (_, kind) in mine.items() if kind == "table"]
    cur.execute(sql.SQL("set local search_path = {}").format(sql.Identifier(live)))  # definitions name them bare
    cur.execute(
        "select c.relname, k.conname, pg_get_constraintdef(k.oid) from pg_constraint k"
        " join pg_class c on c.oid = k.conrelid join pg_class r on r.oid = k.confrelid"
        " where c.relnamespace = to_regnamespace(%s) and k.contype = 'f' and c.relname = any(%s)"
        " and r.relnamespace = c.relnamespace and not r.relname = any(%s) order by 1, 2",
        (live, tables, tables),
    )
    foreign_keys = cur.fetchall()
    statements = []
    for oid, kind in mine.values():
        if kind in ("function", "procedure"):
            cur.execute("select pg_get_functiondef(%s), %s || ' ' || %s::regprocedure::text, proowner::regrole::text"
                        " from pg_proc where oid = %s", (oid, kind, oid, oid))  # fmt: skip
        elif kind == "view":
            cur.execute(
                "select format('create view %%I%%s as %%s', relname, coalesce(' with (' || array_to_string(reloptions,"
                " ', ') || ')', ''), pg_get_viewdef(oid)), format('view %%I', relname), relowner::regrole::text"
                " from pg_class where oid = %s",
                (oid,),
            )
        else:
            continue
        create, named, owner = cur.fetchone()
        statements += [create, f"alter {named} owner to {owner}"]
    cur.execute("set local search_path to default")
    sequences = [name for name, (_, kind) in mine.items() if kind == "sequence"]
    return AppObjects(tables, sequences, foreign_keys, statements)


def carry_app_objects(cur: Cursor, objects: AppObjects, outgoing: str, live: str) -> None:
    """Move the app's tables (rows and all) from `outgoing` into the new `live`, point their foreign keys at
    the new tables, and re-create its functions and views there, against the new tables."""
    for kind, names in (("table", objects.tables), ("sequence", objects.sequences)):
        for name in names:
            move = sql.SQL("alter {} {} set schema {}")
            cur.execute(move.format(sql.SQL(kind), qualified(outgoing, name), sql.Identifier(live)))
    cur.execute(sql.SQL("set local search_path = {}").format(sql.Identifier(live)))
    for table, constraint, definition in objects.foreign_keys:
        cur.execute(
            sql.SQL("alter table {table} drop constraint {name}, add constraint {name} {definition}").format(
                table=sql.Identifier(table), name=sql.Identifier(constraint), definition=sql.SQL(definition)
            )
        )
    for statement in objects.statements:
        cur.execute(statement)
    cur.execute("set local search_path to default")
