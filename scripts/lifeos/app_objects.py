"""The app's own objects in live v2 (alembic_version, its tables, views, functions) and what its migrations added
to v2's tables (columns and their values, constraints, defaults, indexes, triggers, policies): what the migration
does not own, found by inventory against the incoming schema and the ledger, and carried into the new live schema
by a swap, after which nothing live may depend on the replaced schema."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg2 import sql

from lifeos.catalog import Cursor, column_names, qualified, tables
from lifeos.guard import CAPTURE_TRIGGER, ChangesWouldBeLost
from lifeos.runs import meta, published_by
from lifeos.settings import Settings

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


# What else of the app's a swap would leave behind in schema %(live)s: its types (those %(incoming)s lacks).
LEFT_BEHIND = """
select format('type %%I', t.typname)
from pg_type t join pg_namespace n on n.oid = t.typnamespace
where n.nspname = %(live)s and t.typtype in ('e', 'd', 'r', 'm')
    and not exists (select from pg_depend d
        where d.classid = 'pg_type'::regclass and d.objid = t.oid and d.deptype = 'e')
    and not exists (select from pg_type i
        where i.typnamespace = to_regnamespace(%(incoming)s) and i.typname = t.typname)
order by 1
"""

# Whether pg_depend row objid of catalog {0} (a default, a constraint) refers to a routine of schema %(schema)s.
USES_ROUTINE = (
    "exists (select from pg_depend u join pg_proc r on r.oid = u.refobjid where u.classid = '{0}'::regclass"
    " and u.objid = {1} and u.refclassid = 'pg_proc'::regclass and r.pronamespace = to_regnamespace(%(schema)s))"
)
# The parts of the tables of schema %(schema)s, each (kind, table, name, definition, whether it refers to a
# routine of the schema): columns (definition: name and type, and the expression of a generated one), NOT NULLs,
# defaults, constraints, indexes no constraint makes, triggers (not the change capture's), policies and row level
# security. Definitions name the schema's objects bare (the caller's search_path is the schema).
PARTS = f"""
select 'column', c.relname, a.attname, format('%%I %%s', a.attname, format_type(a.atttypid, a.atttypmod))
    || coalesce((select ' generated always as (' || pg_get_expr(d.adbin, d.adrelid) || ') stored'
        from pg_attrdef d where d.adrelid = c.oid and d.adnum = a.attnum and a.attgenerated = 's'), '')
    || case when a.attidentity <> '' then ' identity' else '' end, false
from pg_attribute a join pg_class c on c.oid = a.attrelid
where c.relnamespace = to_regnamespace(%(schema)s) and c.relkind in ('r', 'p') and a.attnum > 0
    and not a.attisdropped
union all
select 'not null', c.relname, a.attname, '', false
from pg_attribute a join pg_class c on c.oid = a.attrelid
where c.relnamespace = to_regnamespace(%(schema)s) and c.relkind in ('r', 'p') and a.attnum > 0
    and not a.attisdropped and a.attnotnull
union all
select 'default', c.relname, a.attname, pg_get_expr(d.adbin, d.adrelid), {USES_ROUTINE.format("pg_attrdef", "d.oid")}
from pg_attrdef d join pg_class c on c.oid = d.adrelid join pg_attribute a on a.attrelid = c.oid and a.attnum = d.adnum
where c.relnamespace = to_regnamespace(%(schema)s) and a.attgenerated = ''
union all
select 'constraint', c.relname, k.conname, pg_get_constraintdef(k.oid), {USES_ROUTINE.format("pg_constraint", "k.oid")}
from pg_constraint k join pg_class c on c.oid = k.conrelid
where c.relnamespace = to_regnamespace(%(schema)s) and k.contype in ('c', 'f', 'u', 'x', 'p')
union all
select 'index', c.relname, x.relname, pg_get_indexdef(x.oid), false
from pg_index i join pg_class x on x.oid = i.indexrelid join pg_class c on c.oid = i.indrelid
where c.relnamespace = to_regnamespace(%(schema)s) and not exists (select from pg_constraint k where k.conindid = x.oid)
union all
select 'trigger', c.relname, g.tgname, pg_get_triggerdef(g.oid), true
from pg_trigger g join pg_class c on c.oid = g.tgrelid
where c.relnamespace = to_regnamespace(%(schema)s) and not g.tgisinternal and not starts_with(g.tgname, %(capture)s)
union all
select 'policy', c.relname, p.polname, format('create policy %%I on %%I as %%s for %%s to %%s', p.polname, c.relname,
        case when p.polpermissive then 'permissive' else 'restrictive' end,
        case p.polcmd when 'r' then 'select' when 'a' then 'insert' when 'w' then 'update' when 'd' then 'delete'
            else 'all' end,
        (select string_agg(case r when 0 then 'public' else r::regrole::text end, ', ') from unnest(p.polroles) r))
    || coalesce(' using (' || pg_get_expr(p.polqual, p.polrelid) || ')', '')
    || coalesce(' with check (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')', ''), true
from pg_policy p join pg_class c on c.oid = p.polrelid
where c.relnamespace = to_regnamespace(%(schema)s)
union all
select 'row level security', c.relname, '', case when c.relforcerowsecurity then 'force' else 'enable' end, false
from pg_class c
where c.relnamespace = to_regnamespace(%(schema)s) and c.relkind in ('r', 'p') and c.relrowsecurity
"""
# The sequences columns of the tables of schema %(schema)s own (serial): each with its table and column, the
# options that make one like it, and its last value.
SERIALS = """
select s.relname, c.relname, a.attname, format('as %%s increment by %%s minvalue %%s maxvalue %%s start with %%s'
        || ' cache %%s %%s', q.data_type, q.increment_by, q.min_value, q.max_value, q.start_value, q.cache_size,
        case when q.cycle then 'cycle' else 'no cycle' end), q.last_value
from pg_depend d join pg_class s on s.oid = d.objid join pg_class c on c.oid = d.refobjid
    join pg_attribute a on a.attrelid = c.oid and a.attnum = d.refobjsubid
    join pg_sequences q on q.schemaname = %(schema)s and q.sequencename = s.relname
where d.classid = 'pg_class'::regclass and d.refclassid = 'pg_class'::regclass and d.deptype = 'a'
    and s.relkind = 'S' and c.relnamespace = to_regnamespace(%(schema)s)
"""
# Each object outside schema %(outgoing)s (in the live one) that depends on an object in it, as pg_describe_object
# words it: what dropping the replaced schema (clean-up) would take with it.
LEANING = """
select distinct pg_describe_object(d.classid, d.objid, d.objsubid)
from pg_depend d
where d.deptype = 'n' and coalesce(
        (select relnamespace from pg_class where d.refclassid = 'pg_class'::regclass and oid = d.refobjid),
        (select pronamespace from pg_proc where d.refclassid = 'pg_proc'::regclass and oid = d.refobjid),
        (select typnamespace from pg_type where d.refclassid = 'pg_type'::regclass and oid = d.refobjid)
    ) = to_regnamespace(%(outgoing)s)
    and coalesce(
        (select relnamespace from pg_class where d.classid = 'pg_class'::regclass and oid = d.objid),
        (select pronamespace from pg_proc where d.classid = 'pg_proc'::regclass and oid = d.objid),
        (select typnamespace from pg_type where d.classid = 'pg_type'::regclass and oid = d.objid),
        (select connamespace from pg_constraint where d.classid = 'pg_constraint'::regclass and oid = d.objid),
        (select c.relnamespace from pg_attrdef a join pg_class c on c.oid = a.adrelid
            where d.classid = 'pg_attrdef'::regclass and a.oid = d.objid),
        (select c.relnamespace from pg_trigger t join pg_class c on c.oid = t.tgrelid
            where d.classid = 'pg_trigger'::regclass and t.oid = d.objid),
        (select c.relnamespace from pg_rewrite r join pg_class c on c.oid = r.ev_class
            where d.classid = 'pg_rewrite'::regclass and r.oid = d.objid),
        (select c.relnamespace from pg_policy p join pg_class c on c.oid = p.polrelid
            where d.classid = 'pg_policy'::regclass and p.oid = d.objid)
    ) = to_regnamespace(%(live)s)
order by 1
"""


CARRIED_KINDS = ("table", "sequence", "view", "function", "procedure")
# The order the parts of a table are given to it in: its defaults and NOT NULLs once the values are in, then its
# constraints, indexes, triggers and policies.
ATTACH_ORDER = ("default", "not null", "constraint", "index", "trigger", "policy", "row level security")


@dataclass
class Part:
    """A part of a table (PARTS): what the app may add to a v2 table, or attach to one of its own."""

    kind: str
    table: str
    name: str
    definition: str
    uses_routine: bool

    @property
    def key(self) -> str:
        """How owned_objects names it."""
        return f"{self.kind} {self.table}.{self.name}"


@dataclass
class AppObjects:
    """What the app keeps in live v2 that the migration does not own, carried into the new live schema."""

    tables: list[str]  # moved, with their rows, indexes, triggers and owned sequences
    sequences: list[str]  # standalone ones, moved
    foreign_keys: list[tuple[str, str, str]]  # table, constraint, definition naming the tables it references bare
    statements: list[str]  # CREATE FUNCTION / PROCEDURE / VIEW and ALTER ... OWNER, naming tables bare, in order
    added: list[Part]  # what the app added to the tables the swap replaces (columns with their values, ...)
    attached: list[Part]  # the parts of its own tables that refer to its routines, which are made anew
    serials: list[tuple[str, str, str, str, int | None]]  # of an added serial column: its sequence (SERIALS), copied


def inventory(cur: Cursor, schema: str) -> dict[str, tuple[int, str]]:
    """Name -> (oid, kind) of each object of `schema` a swap moves with it (INVENTORY)."""
    cur.execute(INVENTORY, {"schema": schema})
    return {name: (oid, kind) for oid, name, kind in cur.fetchall()}


def owned_objects(cur: Cursor, settings: Settings, schema: str) -> set[str]:
    """The objects the migration put in `schema` when it published it (none when it did not)."""
    cur.execute(
        sql.SQL("select object from {} where run_id = %s").format(meta(settings, "owned_objects")),
        (published_by(cur, settings, schema),),
    )
    return {name for (name,) in cur.fetchall()}


def parts(cur: Cursor, schema: str) -> dict[str, Part]:
    """The parts of the tables of `schema` by key, their definitions naming its objects bare."""
    cur.execute(sql.SQL("set local search_path = {}").format(sql.Identifier(schema)))
    cur.execute(PARTS, {"schema": schema, "capture": CAPTURE_TRIGGER})
    found = [Part(*row) for row in cur.fetchall()]
    cur.execute("set local search_path to default")
    return {part.key: part for part in found}


def added_parts(
    cur: Cursor, settings: Settings, live: str, incoming: str, app_tables: list[str]
) -> tuple[list[Part], list[Part]]:
    """The parts the app added to the tables `incoming` replaces (neither the migration's nor in `incoming`),
    and those of its own tables (moved along) that refer to its routines, which are made anew in the new live
    schema, so re-attached there."""
    theirs = set(parts(cur, incoming)) | owned_objects(cur, settings, live)
    replaced = set(tables(cur, incoming))
    mine = parts(cur, live)
    added = [part for key, part in mine.items() if part.table in replaced and key not in theirs]
    attached = [
        part
        for part in mine.values()
        if part.table in app_tables and (part.kind in ("trigger", "policy") or part.uses_routine)
    ]
    return added, attached


def app_objects(cur: Cursor, settings: Settings, live: str, incoming: str, action: str) -> AppObjects:
    """The app's objects in `live`: neither the migration's nor in `incoming` (alembic_version, its tables,
    views and functions). Refuses, naming each, when any of the app's objects cannot be carried over."""
    theirs = set(inventory(cur, incoming)) | owned_objects(cur, settings, live)
    mine = {name: found for name, found in inventory(cur, live).items() if name not in theirs}
    cur.execute(LEFT_BEHIND, {"live": live, "incoming": incoming, "capture": CAPTURE_TRIGGER})
    stuck = [f"{kind} {name}" for name, (_, kind) in mine.items() if kind not in CARRIED_KINDS]
    stuck += [name for (name,) in cur.fetchall()]
    tables = [name for name, (_, kind) in mine.items() if kind == "table"]
    added, attached = added_parts(cur, settings, live, incoming, tables)
    stuck += [f"identity column {part.table}.{part.name}" for part in added if part.definition.endswith(" identity")]
    if stuck:
        raise ChangesWouldBeLost(
            f"live v2 (schema {live}) holds objects the migration does not own that {action} cannot carry over:"
            f" {', '.join(stuck)}; move or drop them, then {action} again"
        )
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
    cur.execute(SERIALS, {"schema": live})
    columns = {(part.table, part.name) for part in added if part.kind == "column"}
    serials = [serial for serial in cur.fetchall() if serial[1:3] in columns]
    return AppObjects(tables, sequences, foreign_keys, statements, added, attached, serials)


def carry_app_objects(cur: Cursor, objects: AppObjects, outgoing: str, live: str, action: str) -> None:
    """Move the app's tables (rows and all) from `outgoing` into the new `live`, add its columns (with their
    values) to the new v2 tables, point its foreign keys at the new tables, re-create its functions and views
    there, against the new tables, then the rest it added to v2's tables and what of its own tables refers to
    its routines. Refuses when anything live would still depend on `outgoing` (pg_depend)."""
    for kind, names in (("table", objects.tables), ("sequence", objects.sequences)):
        for name in names:
            move = sql.SQL("alter {} {} set schema {}")
            cur.execute(move.format(sql.SQL(kind), qualified(outgoing, name), sql.Identifier(live)))
    for sequence, _, _, options, last_value in objects.serials:  # a copy: the backup's column keeps its own
        cur.execute(sql.SQL("create sequence {} {}").format(qualified(live, sequence), sql.SQL(options)))
        if last_value is not None:
            cur.execute("select setval(%s::regclass, %s)", (qualified(live, sequence).as_string(cur), last_value))
    add_columns(cur, objects.added, outgoing, live)
    cur.execute(sql.SQL("set local search_path = {}").format(sql.Identifier(live)))
    for table, constraint, definition in objects.foreign_keys:
        cur.execute(
            sql.SQL("alter table {table} drop constraint {name}, add constraint {name} {definition}").format(
                table=sql.Identifier(table), name=sql.Identifier(constraint), definition=sql.SQL(definition)
            )
        )
    for statement in objects.statements:
        cur.execute(statement)
    parts_in_order = [(part, False) for part in objects.added if part.kind != "column"]
    parts_in_order += [(part, True) for part in objects.attached]
    for part, again in sorted(parts_in_order, key=lambda found: ATTACH_ORDER.index(found[0].kind)):
        attach(cur, part, again)
    for sequence, table, column, _, _ in objects.serials:  # its table's owner's, as OWNED BY requires
        cur.execute("select relowner::regrole::text from pg_class where oid = %s::regclass", (table,))
        owner = sql.SQL(cur.fetchone()[0])  # quoted by regrole
        cur.execute(sql.SQL("alter sequence {} owner to {}").format(sql.Identifier(sequence), owner))
        column_name = sql.SQL("{}.{}").format(sql.Identifier(table), sql.Identifier(column))
        cur.execute(sql.SQL("alter sequence {} owned by {}").format(sql.Identifier(sequence), column_name))
    cur.execute("set local search_path to default")
    refuse_leaning(cur, outgoing, live, action)


def add_columns(cur: Cursor, added: list[Part], outgoing: str, live: str) -> None:
    """Add the app's columns to the new live tables, each with its values from the replaced table, row by
    primary key (the tables' own triggers off meanwhile: the values were written already)."""
    by_table: dict[str, list[Part]] = {}
    for part in added:
        if part.kind == "column":
            by_table.setdefault(part.table, []).append(part)
    for table, columns in by_table.items():
        cur.execute(
            sql.SQL("alter table {} {}").format(
                qualified(live, table),
                sql.SQL(", ").join(sql.SQL("add column {}").format(sql.SQL(column.definition)) for column in columns),
            )
        )
        copied = [column.name for column in columns if " generated always as (" not in column.definition]
        key = column_names(cur, live, table, key=True)
        if not copied:
            continue
        if not key:
            raise ChangesWouldBeLost(f"table {table} has no primary key to carry the app's columns {copied} by")
        cur.execute(sql.SQL("alter table {} disable trigger user").format(qualified(live, table)))
        cur.execute(
            sql.SQL("update {new} as n set {values} from {old} as o where {match}").format(
                new=qualified(live, table),
                old=qualified(outgoing, table),
                values=sql.SQL(", ").join(sql.SQL("{0} = o.{0}").format(sql.Identifier(name)) for name in copied),
                match=sql.SQL(" and ").join(sql.SQL("n.{0} = o.{0}").format(sql.Identifier(name)) for name in key),
            )
        )
        cur.execute(sql.SQL("alter table {} enable trigger user").format(qualified(live, table)))


def attach(cur: Cursor, part: Part, again: bool) -> None:
    """Give a table of the live schema (the search_path) the `part`; `again`: it has one by that name, made
    against the replaced schema's objects, which it replaces."""
    table, name = sql.Identifier(part.table), sql.Identifier(part.name)
    definition = sql.SQL(part.definition)
    if part.kind == "default":
        cur.execute(sql.SQL("alter table {} alter column {} set default {}").format(table, name, definition))
    elif part.kind == "not null":
        cur.execute(sql.SQL("alter table {} alter column {} set not null").format(table, name))
    elif part.kind == "constraint":
        drop = sql.SQL("drop constraint {}, ").format(name) if again else sql.SQL("")
        cur.execute(sql.SQL("alter table {} {}add constraint {} {}").format(table, drop, name, definition))
    elif part.kind == "row level security":
        cur.execute(sql.SQL("alter table {} enable row level security").format(table))
        if part.definition == "force":
            cur.execute(sql.SQL("alter table {} force row level security").format(table))
    else:  # an index, trigger or policy: its definition is its CREATE statement
        if again:
            cur.execute(sql.SQL("drop {} {} on {}").format(sql.SQL(part.kind), name, table))
        cur.execute(definition)


def refuse_leaning(cur: Cursor, outgoing: str, live: str, action: str) -> None:
    """Refuse, naming each, when anything of the new live schema still depends on the replaced one, which
    clean-up drops (with CASCADE) in the end."""
    cur.execute(LEANING, {"outgoing": outgoing, "live": live})
    leaning = [name for (name,) in cur.fetchall()]
    if leaning:
        raise ChangesWouldBeLost(
            f"after the swap, objects of live v2 (schema {live}) would still depend on the replaced schema, which"
            f" clean-up drops: {', '.join(leaning)}; move or drop them, then {action} again"
        )
