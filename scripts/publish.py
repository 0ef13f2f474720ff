"""Cut-over of live v2: publish a green build, roll back, export the app's changes, clean up.

`dbt build` writes v2 into the empty shadow schema and records its verdict in
the ledger (<meta_schema>.runs, macros/migration_ledger.sql). `publish` then,
in one transaction: locks the live tables against writes, refuses when they
hold rows the app created, changed or deleted since the last publish (unless
--force) or when the new v2 would shrink a table (unless --allow-shrink),
pg_dumps the live schema into the backups folder and checks that the dump reads
back, renames live -> v2_backup_<UTC time> and shadow -> live, carries the app's
own objects (alembic_version, its tables, views, functions) and the replaced
schema's privileges into the new live schema, grants the app's role its rights,
and installs triggers on the live tables that record each insert, update and
delete the app makes in the ledger, which is how the next publish, rollback or
export knows the app's writes. Rollback swaps the same way. scripts/migrate.py
calls publish() right after its `dbt build`.

    publish          publish the shadow of the last green `dbt build`
    rollback         make the newest v2_backup_* schema live again
    export-changes   write the rows the app created, changed or deleted since the last publish, as CSV and SQL
    cleanup          drop the v1 copy, v2_work, dbt_test__audit, the shadow and every backup schema (asks, or --yes)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extras import Json
from rich.console import Console

import lifeos_env

Cursor = psycopg2.extensions.cursor
console = Console(soft_wrap=True)  # a one-line message stays one line
BACKUP_PREFIX = "v2_backup_"
ROLLED_BACK_PREFIX = "v2_rolledback_"
DEFAULT_BACKUP_DIR = Path("/opt/lifeos/backups")
LOCK_TIMEOUT = "30s"
SHRINK_TOLERANCE = 0.05  # a table may lose up to this share of its published rows (rows deleted in v1) unasked
# What the app's role gets on live v2, on its objects now and (default privileges) on those created later.
APP_PRIVILEGES = {"tables": "select, insert, update, delete", "sequences": "usage, select", "functions": "execute"}
BUILDS = ("build", "run")  # ledger commands that write the shadow schema
ANY_RUN = (*BUILDS, "rollback", "cleanup")
TEST_FAILURES_SCHEMA = "dbt_test__audit"  # where dbt stores failing test rows (store_failures), for scripts/report
# Derived tables: rebuilt from the others (refresh_search_index()), so the backup holds no rows of theirs and the
# guard records no writes to them.
DERIVED = ("search_index",)
CAPTURE_TRIGGER = "lifeos_capture_changes"  # the triggers that record the app's writes, <name>_<insert|update|delete>
# Exported rows are written in their text form, which must not depend on the client's settings.
SESSION_OPTIONS = (
    "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=1 -c bytea_output=hex"
)


class ChangesWouldBeLost(lifeos_env.MigrationError):
    """Live v2 holds rows the app created, changed or deleted since the last publish."""


class WouldShrink(ChangesWouldBeLost):
    """The new v2 has far fewer rows than live v2 in a migrated table: rows would leave v2."""


@dataclass
class Run:
    """One row of the ledger."""

    run_id: int
    command: str
    full_build: bool
    result: str
    schemas: dict[str, str]
    app_role: str | None


def meta(name: str) -> sql.Composed:
    """A table of the migration's durable schema (var meta_schema)."""
    return sql.SQL("{}.{}").format(sql.Identifier(lifeos_env.dbt_var("meta_schema")), sql.Identifier(name))


def last_run(cur: Cursor, commands: tuple[str, ...]) -> Run:
    """The newest ledger row of one of `commands`."""
    cur.execute("select to_regclass(%s) is not null", (meta("runs").as_string(cur),))
    row = None
    if cur.fetchone()[0]:
        cur.execute(
            sql.SQL(
                "select run_id, command, full_build, result, schemas, app_role from {}"
                " where command = any(%s) order by run_id desc limit 1"
            ).format(meta("runs")),
            (list(commands),),
        )
        row = cur.fetchone()
    if row is None:
        raise lifeos_env.MigrationError("no migration has run on this database: run scripts/migrate first")
    return Run(*row)


def git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=lifeos_env.ROOT, capture_output=True, text=True)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def new_run(cur: Cursor, command: str, template: Run) -> int:
    """Record the start of a rollback or clean-up, committed at once so a failure is recorded too."""
    cur.execute(
        sql.SQL(
            "insert into {} (command, schemas, app_role, result) values (%s, %s, %s, 'running') returning run_id"
        ).format(meta("runs")),
        (command, Json(template.schemas), template.app_role),
    )
    run_id = cur.fetchone()[0]
    cur.connection.commit()
    return run_id


def finish_run(cur: Cursor, run_id: int, **fields: object) -> None:
    fields = {"finished_at": datetime.now(UTC), "git_commit": git_commit(), **fields}
    cur.execute(
        sql.SQL("update {} set {} where run_id = %s").format(
            meta("runs"),
            sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in fields),
        ),
        [Json(value) if isinstance(value, dict) else value for value in fields.values()] + [run_id],
    )


@contextmanager
def recorded(run_id: int) -> Iterator[Cursor]:
    """One transaction for the work; on failure it is rolled back and the run's result says why."""
    with closing(lifeos_env.connect(options=SESSION_OPTIONS)) as conn, conn.cursor() as cur:
        try:
            yield cur
            conn.commit()
        except (lifeos_env.MigrationError, psycopg2.Error) as error:
            conn.rollback()
            message = str(error).strip().splitlines()[0]
            result = "refused" if isinstance(error, ChangesWouldBeLost) else "failed"
            finish_run(cur, run_id, result=result, detail=message)
            conn.commit()
            if isinstance(error, psycopg2.Error):
                raise lifeos_env.MigrationError(message) from error
            raise


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


def published_by(cur: Cursor, schema: str) -> int | None:
    """The run that published `schema` (schema oids survive renames), if one did."""
    cur.execute(
        sql.SQL(
            "select max(run_id) from {} where published_schema_oid = (select oid from pg_namespace where nspname = %s)"
        ).format(meta("runs")),
        (schema,),
    )
    return cur.fetchone()[0]


def capture_changes(cur: Cursor, schema: str) -> None:
    """Record every insert, update and delete on the tables of `schema` but the derived ones in the change log."""
    lifeos_env.create_meta_tables(cur, "changes")
    events = {"insert": "new table as new_rows", "update": "new table as new_rows", "delete": "old table as old_rows"}
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
                    record=meta("record_changes"),
                )
            )


def net_changes(schema: str) -> sql.Composed:
    """Query of each row of `schema` the app wrote since the schema was published, once, with its table, id,
    kind ('changed': created or updated, and still there; 'deleted': published, now gone) and, when deleted,
    the row as it was. A row the app created and deleted again is not in it."""
    return sql.SQL(
        "select table_name, row_id, case when last_op = 'DELETE' then 'deleted' else 'changed' end as kind, old_row"
        " from (select table_name, row_id, (array_agg(operation order by change_id))[1] as first_op,"
        " (array_agg(operation order by change_id desc))[1] as last_op,"
        " (array_agg(old_row order by change_id desc))[1] as old_row"
        " from {changes} where schema_oid = (select oid from pg_namespace where nspname = {schema})"
        " group by table_name, row_id) as written"
        " where not (first_op = 'INSERT' and last_op = 'DELETE')"
    ).format(changes=meta("changes"), schema=sql.Literal(schema))


def row_counts(cur: Cursor, schema: str) -> dict[str, int]:
    """Rows per table of `schema`."""
    counts = {}
    for table in tables(cur, schema):
        cur.execute(sql.SQL("select count(*) from {}").format(qualified(schema, table)))
        counts[table] = cur.fetchone()[0]
    return counts


def app_changes(cur: Cursor, schema: str) -> dict[str, tuple[int, int]]:
    """Per table of `schema` the app wrote since it was published: the rows it created or changed, and deleted."""
    cur.execute("select to_regclass(%s) is not null", (meta("changes").as_string(cur),))
    if not cur.fetchone()[0]:
        return {}
    cur.execute(
        sql.SQL(
            "select table_name, count(*) filter (where kind = 'changed'), count(*) filter (where kind = 'deleted')"
            " from ({}) as net group by table_name order by table_name"
        ).format(net_changes(schema))
    )
    return {table: (changed, deleted) for table, changed, deleted in cur.fetchall()}


def hold_live(cur: Cursor, live: str, action: str, force: bool, carried: list[str]) -> None:
    """Lock the live tables against writes (reads go on), then refuse if the app changed any that do not
    stay live (the app's own tables, `carried`, do)."""
    cur.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
    live_tables = tables(cur, live)
    if live_tables:
        cur.execute(
            sql.SQL("lock table {} in exclusive mode").format(
                sql.SQL(", ").join(qualified(live, table) for table in live_tables)
            )
        )
    changes = {table: rows for table, rows in app_changes(cur, live).items() if table not in carried}
    if changes and not force:
        counts = [
            f"{what} " + ", ".join(f"{table} {counts[kind]}" for table, counts in changes.items() if counts[kind])
            + " rows"
            for kind, what in enumerate(("created or changed", "deleted"))
            if any(counts[kind] for counts in changes.values())
        ]  # fmt: skip
        raise ChangesWouldBeLost(
            f"live v2 (schema {live}) holds the app's writes since the last migration, which {action} would"
            f" undo ({'; '.join(counts)}); export them with `scripts/publish export-changes`, or {action} anyway"
            f" with `scripts/publish {action} --force`"
        )


def backup_dir(chosen: Path | None) -> Path:
    folder = chosen or Path(os.environ.get("LIFEOS_BACKUP_DIR") or DEFAULT_BACKUP_DIR)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise lifeos_env.MigrationError(
            f"cannot write to the backups folder {folder}: {error.strerror}; choose one with --backup-dir"
            " or LIFEOS_BACKUP_DIR"
        ) from error
    return folder


def run_client(*args: str) -> str:
    """Run a PostgreSQL client program on the target (PG* variables); its stdout, or a one-line error."""
    done = subprocess.run([lifeos_env.pg_client(args[0]), *args[1:]], capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise lifeos_env.MigrationError(f"{args[0]} failed: {last}")
    return done.stdout


def dump_schema(cur: Cursor, schema: str, folder: Path, stamp: str) -> tuple[Path, str]:
    """pg_dump `schema` (custom format, derived tables' rows left out) into folder, check it reads back;
    return the file and its sha256."""
    path = folder / f"{os.environ['PGDATABASE']}_{schema}_{stamp}.dump"
    derived = [f'--exclude-table-data="{schema}"."{table}"' for table in DERIVED]
    run_client("pg_dump", "--format=custom", f'--schema="{schema}"', *derived, f"--file={path}")
    entries = [line.split() for line in run_client("pg_restore", "--list", str(path)).splitlines()]
    read_back = {fields[6] for fields in entries if fields[3:6] == ["TABLE", "DATA", schema]}
    missing = set(tables(cur, schema)) - set(DERIVED) - read_back
    if missing:
        raise lifeos_env.MigrationError(f"backup {path} does not read back: pg_restore -l lacks {sorted(missing)}")
    digest = hashlib.sha256()
    with path.open("rb") as dump:
        for block in iter(lambda: dump.read(1 << 20), b""):
            digest.update(block)
    return path, digest.hexdigest()


def swap_in(cur: Cursor, incoming: str, live: str, outgoing: str, app_role: str | None, apps: AppObjects) -> None:
    """Rename live -> outgoing and incoming -> live; extensions, the app's objects and privileges follow the live
    name."""
    if schema_exists(cur, live):
        cur.execute(sql.SQL("alter schema {} rename to {}").format(sql.Identifier(live), sql.Identifier(outgoing)))
    cur.execute(sql.SQL("alter schema {} rename to {}").format(sql.Identifier(incoming), sql.Identifier(live)))
    cur.execute(
        "select e.extname, e.extrelocatable from pg_extension e join pg_namespace n on n.oid = e.extnamespace"
        " where n.nspname = %s",
        (outgoing,),
    )
    for extension, relocatable in cur.fetchall():
        if not relocatable:
            raise lifeos_env.MigrationError(f"extension {extension} lives in schema {live} and cannot move with it")
        cur.execute(sql.SQL("alter extension {} set schema {}").format(sql.Identifier(extension), sql.Identifier(live)))
    if schema_exists(cur, outgoing):
        carry_app_objects(cur, apps, outgoing, live)
        carry_over_privileges(cur, outgoing, live)
    if app_role:
        grant_app_role(cur, live, app_role)


def check_role(cur: Cursor, role: str) -> None:
    """Fail in one line when the app's role does not exist on the target server."""
    cur.execute("select count(*) from pg_roles where rolname = %s", (role,))
    if cur.fetchone()[0] == 0:
        raise lifeos_env.MigrationError(
            f"the app role {role} (--app-role / LIFEOS_APP_ROLE) does not exist on the target server"
        )


def grant_app_role(cur: Cursor, schema: str, role: str) -> None:
    """Grant the app's role what the app needs on `schema`, now and on objects created in it later."""
    check_role(cur, role)
    names = {"schema": sql.Identifier(schema), "role": sql.Identifier(role)}
    cur.execute(sql.SQL("grant usage on schema {schema} to {role}").format(**names))
    for kind, privileges in APP_PRIVILEGES.items():
        for grant in (
            "grant {privileges} on all {kind} in schema {schema} to {role}",
            "alter default privileges in schema {schema} grant {privileges} on {kind} to {role}",
        ):
            cur.execute(sql.SQL(grant).format(privileges=sql.SQL(privileges), kind=sql.SQL(kind), **names))


# One GRANT (or ALTER DEFAULT PRIVILEGES) per privilege any role but the owner held in schema %(old)s: on the
# schema, on each table, view, sequence and function that %(new)s holds under the same name, and by default.
CARRIED_PRIVILEGES = """
with grantable as (
    select 'schema ' || quote_ident(%(new)s) as object, n.nspowner as owner, n.nspacl as acl
    from pg_namespace n where n.nspname = %(old)s
    union all
    select case c.relkind when 'S' then 'sequence ' else 'table ' end || format('%%I.%%I', %(new)s, c.relname),
        c.relowner, c.relacl
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = %(old)s and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S') and exists (
        select from pg_class t join pg_namespace tn on tn.oid = t.relnamespace
        where tn.nspname = %(new)s and t.relname = c.relname and t.relkind = c.relkind)
    union all
    select format('function %%I.%%I(%%s)', %(new)s, p.proname, pg_get_function_identity_arguments(p.oid)),
        p.proowner, p.proacl
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = %(old)s and exists (
        select from pg_proc t join pg_namespace tn on tn.oid = t.pronamespace
        where tn.nspname = %(new)s and t.proname = p.proname
            and pg_get_function_identity_arguments(t.oid) = pg_get_function_identity_arguments(p.oid))
)
select format('grant %%s on %%s to %%s%%s', a.privilege_type, g.object,
    case a.grantee when 0 then 'public' else a.grantee::regrole::text end,
    case when a.is_grantable then ' with grant option' else '' end)
from grantable g cross join aclexplode(g.acl) a
where a.grantee <> g.owner
union all
select format('alter default privileges for role %%s in schema %%I grant %%s on %%s to %%s', d.defaclrole::regrole,
    %(new)s, a.privilege_type,
    case d.defaclobjtype when 'r' then 'tables' when 'S' then 'sequences' when 'f' then 'functions' else 'types' end,
    case a.grantee when 0 then 'public' else a.grantee::regrole::text end)
from pg_default_acl d join pg_namespace n on n.oid = d.defaclnamespace cross join aclexplode(d.defaclacl) a
where n.nspname = %(old)s
"""


def carry_over_privileges(cur: Cursor, old: str, new: str) -> None:
    """Give schema `new` the privileges schema `old` gave: an app that worked before a publish keeps working."""
    cur.execute(CARRIED_PRIVILEGES, {"old": old, "new": new})
    for (grant,) in cur.fetchall():
        cur.execute(grant)


def access_warning(cur: Cursor, live: str) -> list[str]:
    """A warning when no role but the owner may read live v2's tables."""
    cur.execute(
        "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " cross join aclexplode(c.relacl) a where n.nspname = %s and c.relkind in ('r', 'p')"
        " and a.grantee <> c.relowner and a.privilege_type = 'SELECT'",
        (live,),
    )
    if cur.fetchone()[0]:
        return []
    return [
        f"no application role has access to live v2 (schema {live}): name the app's role with --app-role ROLE"
        " (or LIFEOS_APP_ROLE)"
    ]


def refuse_shrink(cur: Cursor, live: str, shadow: str, allow: bool) -> list[str]:
    """Refuse (unless `allow`) when a table of `shadow` has far fewer rows than live v2 had when published,
    or none where it had some (a table only live v2 has stays live). Return the note for the report when
    allowed."""
    run_id = published_by(cur, live)
    before: dict[str, int] = {}
    if run_id is not None:
        cur.execute(sql.SQL("select table_counts from {} where run_id = %s").format(meta("runs")), (run_id,))
        before = cur.fetchone()[0] or {}
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


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def publish(
    *, force: bool = False, backup_to: Path | None = None, allow_shrink: bool = False, app_role: str | None = None
) -> list[str]:
    """Publish the shadow of the last green, full `dbt build` as live v2.

    The app's role is `app_role`, else the one the build recorded. Return notes for the report
    (an allowed shrink, no app role with access)."""
    with closing(lifeos_env.connect()) as conn, conn.cursor() as cur:
        build = last_run(cur, BUILDS)
    # refused or failed: a publish of this green build was tried and rolled back; the shadow is as built
    if build.result not in ("built", "refused", "failed") or not build.full_build:
        raise lifeos_env.MigrationError(
            f"nothing to publish: the last `dbt {build.command}` (run {build.run_id}) is {build.result}"
            + ("" if build.full_build else ", and not a full build")
            + "; publish follows a green full `dbt build` (scripts/migrate)"
        )
    live, shadow = build.schemas["live"], build.schemas["shadow"]
    with recorded(build.run_id) as cur:
        if not tables(cur, shadow):
            raise lifeos_env.MigrationError(f"the shadow schema {shadow} holds no tables: run `dbt build` again")
        apps = app_objects(cur, live, shadow, "publish")
        hold_live(cur, live, "publish", force, apps.tables)
        notes = refuse_shrink(cur, live, shadow, allow_shrink)
        cur.execute(
            sql.SQL("insert into {} (run_id, object) select %s, unnest(%s::text[])").format(meta("owned_objects")),
            (build.run_id, list(inventory(cur, shadow))),
        )
        when = stamp()
        dump_path, dump_sha256 = (
            dump_schema(cur, live, backup_dir(backup_to), when) if tables(cur, live) else (None, None)
        )
        backup = BACKUP_PREFIX + when
        swap_in(cur, shadow, live, backup, app_role or build.app_role, apps)
        notes += access_warning(cur, live)
        capture_changes(cur, live)
        cur.execute("select oid from pg_namespace where nspname = %s", (live,))
        finish_run(
            cur, build.run_id, result="published", published_schema_oid=cur.fetchone()[0],
            backup_schema=backup if schema_exists(cur, backup) else None,
            dump_path=dump_path and str(dump_path), dump_sha256=dump_sha256, table_counts=row_counts(cur, live),
            detail="; ".join(notes) or None,
        )  # fmt: skip
    console.print(f"published schema {shadow} as live v2 ({live})" + (f"; backup {dump_path}" if dump_path else ""))
    for note in notes:
        console.print(f"[yellow]note: {note}[/yellow]", markup=True, highlight=False)
    return notes


def rollback(*, force: bool = False) -> str:
    """Make the newest backup schema live again; the replaced live schema is kept. Return the restored backup."""
    with closing(lifeos_env.connect()) as conn, conn.cursor() as cur:
        template = last_run(cur, ANY_RUN)
        backups = schemas_like(cur, BACKUP_PREFIX)
        if not backups:
            raise lifeos_env.MigrationError(f"nothing to roll back to: there is no {BACKUP_PREFIX}* schema")
        run_id = new_run(cur, "rollback", template)
    live = template.schemas["live"]
    with recorded(run_id) as cur:
        apps = app_objects(cur, live, backups[0], "rollback")
        hold_live(cur, live, "rollback", force, apps.tables)
        displaced = ROLLED_BACK_PREFIX + stamp()
        swap_in(cur, backups[0], live, displaced, template.app_role, apps)
        capture_changes(cur, live)  # a backup from before change capture gets it too
        finish_run(
            cur, run_id, result="rolled back", backup_schema=displaced, table_counts=row_counts(cur, live),
            detail=f"{backups[0]} is live v2 ({live}) again; the replaced live schema is kept as {displaced}",
        )  # fmt: skip
    console.print(f"rolled back: {backups[0]} is live v2 ({live}) again; the replaced one is kept as {displaced}")
    return backups[0]


def insert_statements(cur: Cursor, schema: str, table: str, rows: sql.Composed) -> sql.Composed:
    """Query of one `insert into <table> (...) values (...);` line per row of the query `rows`."""
    cur.execute(
        "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped"
        " order by attnum",
        (qualified(schema, table).as_string(cur),),
    )
    columns = [sql.Identifier(name) for (name,) in cur.fetchall()]
    return sql.SQL("select format('insert into %I (%s) values (%s);', {}, {}, concat_ws(', ', {})) from ({}) t").format(
        sql.Literal(table),
        sql.Literal(sql.SQL(", ").join(columns).as_string(cur)),
        sql.SQL(", ").join(sql.SQL("quote_nullable(t.{})").format(column) for column in columns),
        rows,
    )


def export_changes(out: Path | None = None, schema: str | None = None) -> dict[str, tuple[int, int]]:
    """Write every row of live v2 (or `schema`) the app created, changed or deleted since its publish.

    Into `out` (default: changes_<database>_<time> in the backups folder): <table>.csv of the rows created or
    changed as they are now, <table>.deleted.csv of the rows deleted as they were (from the change log), both
    with a header, and changes.sql, one INSERT per created or changed row and one DELETE per deleted row.
    Return the rows per table: (created or changed, deleted).
    """
    with closing(lifeos_env.connect(options=SESSION_OPTIONS)) as conn, conn.cursor() as cur:
        source = schema or last_run(cur, ANY_RUN).schemas["live"]
        changes = app_changes(cur, source)
        if not changes:
            console.print(f"no rows in schema {source} were created, changed or deleted since it was published")
            return changes
        folder = out or backup_dir(None) / f"changes_{os.environ['PGDATABASE']}_{stamp()}"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "changes.sql").open("w") as statements:
            statements.write(f"-- the app's writes to schema {source} after the migration published it\n")
            for table, (changed, deleted) in changes.items():
                files = {"changed": (changed, f"{table}.csv"), "deleted": (deleted, f"{table}.deleted.csv")}
                for kind, (count, name) in files.items():
                    if count:
                        query = written_rows(source, table, kind)
                        with (folder / name).open("w") as csv:
                            cur.copy_expert(sql.SQL("copy ({}) to stdout with (format csv, header)").format(query), csv)
                        cur.execute(replay_statements(cur, source, table, query, kind))
                        statements.writelines(line + "\n" for (line,) in cur.fetchall())
    total = sum(changed + deleted for changed, deleted in changes.values())
    console.print(f"wrote {total} rows of schema {source} the app created, changed or deleted to {folder}")
    return changes


def written_rows(schema: str, table: str, kind: str) -> sql.Composed:
    """Query of the rows of schema.table the app created or changed (kind 'changed') as they are now, or
    deleted (kind 'deleted') as they were."""
    rows = sql.SQL("select * from ({}) as net where table_name = {} and kind = {}").format(
        net_changes(schema), sql.Literal(table), sql.Literal(kind)
    )
    if kind == "changed":
        return sql.SQL("select t.* from {} t where t.id::text in (select row_id from ({}) as written)").format(
            qualified(schema, table), rows
        )
    return sql.SQL("select r.* from ({}) as written, jsonb_populate_record(null::{}, written.old_row) as r").format(
        rows, qualified(schema, table)
    )


def replay_statements(cur: Cursor, schema: str, table: str, rows: sql.Composed, kind: str) -> sql.Composed:
    """Query of the SQL lines that replay the app's writes: `insert into <table> (...) values (...);` per
    created or changed row, `delete from <table> where id = ...;` per deleted one."""
    if kind == "deleted":
        return sql.SQL("select format('delete from %I where id = %L;', {}, t.id) from ({}) t").format(
            sql.Literal(table), rows
        )
    return insert_statements(cur, schema, table, rows)


def cleanup(*, yes: bool = False) -> list[str]:
    """Drop the v1 copy, v2_work, dbt's test failures, the shadow and every backup schema, once v2 is live.

    Return the schemas dropped.
    """
    with closing(lifeos_env.connect()) as conn, conn.cursor() as cur:
        template = last_run(cur, ANY_RUN)
        schemas = template.schemas
        if not tables(cur, schemas["live"]):
            raise lifeos_env.MigrationError(f"live v2 (schema {schemas['live']}) is empty: publish before cleaning up")
        staging = (schemas["v1"], schemas["work"], schemas["shadow"], TEST_FAILURES_SCHEMA)
        doomed = [name for name in staging if schema_exists(cur, name)]
        doomed += schemas_like(cur, BACKUP_PREFIX) + schemas_like(cur, ROLLED_BACK_PREFIX)
        if not doomed:
            console.print("nothing to clean up")
            return doomed
        question = f"Drop schemas {', '.join(doomed)} with everything in them? Type yes to go on: "
        if not yes and input(question).strip() != "yes":
            raise lifeos_env.MigrationError("clean-up cancelled; nothing was dropped")
        run_id = new_run(cur, "cleanup", template)
    with recorded(run_id) as cur:
        for name in doomed:
            cur.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(name)))
        lifeos_env.create_meta_tables(cur, "changes")
        cur.execute(
            sql.SQL("delete from {} where schema_oid not in (select oid from pg_namespace)").format(meta("changes"))
        )
        finish_run(cur, run_id, result="cleaned up", detail="dropped " + ", ".join(doomed))
    console.print(f"dropped {', '.join(doomed)}")
    return doomed


def add_app_role_option(parser: argparse.ArgumentParser, description: str) -> None:
    """The option --app-role ROLE of scripts/publish and scripts/migrate, by default LIFEOS_APP_ROLE."""
    role = os.environ.get("LIFEOS_APP_ROLE") or None
    parser.add_argument("--app-role", metavar="ROLE", default=role, help=description)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    publishing = commands.add_parser("publish", help="publish the shadow of the last green dbt build")
    publishing.add_argument("--force", action="store_true", help="replace rows the app changed (they are backed up)")
    publishing.add_argument(
        "--allow-shrink", action="store_true", help="publish even when a table would lose rows or be emptied"
    )
    add_app_role_option(publishing, "the app's role to grant (LIFEOS_APP_ROLE; default: the one the build recorded)")
    publishing.add_argument(
        "--backup-dir",
        type=Path,
        help=f"folder of the pg_dump backups (LIFEOS_BACKUP_DIR, default {DEFAULT_BACKUP_DIR})",
    )
    rolling = commands.add_parser("rollback", help="make the newest backup schema live again")
    rolling.add_argument("--force", action="store_true", help="roll back over rows the app changed")
    exporting = commands.add_parser("export-changes", help="write the app's writes since the publish, as CSV and SQL")
    exporting.add_argument("--out", type=Path, help="folder to write (default: under the backups folder)")
    exporting.add_argument("--schema", help="schema to export from (default: live v2)")
    cleaning = commands.add_parser("cleanup", help="drop the staging, shadow and backup schemas")
    cleaning.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    args = parser.parse_args(argv)
    try:
        lifeos_env.ensure_target()
        if args.command == "publish":
            publish(force=args.force, backup_to=args.backup_dir, allow_shrink=args.allow_shrink, app_role=args.app_role)
        elif args.command == "rollback":
            rollback(force=args.force)
        elif args.command == "export-changes":
            export_changes(args.out, args.schema)
        else:
            cleanup(yes=args.yes)
    except lifeos_env.MigrationError as error:
        console.print(f"[red]{args.command} failed: {error}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
