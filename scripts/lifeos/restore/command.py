"""The restore command: a dump file or a live v1 database into the v1 schema, in one transaction."""

from __future__ import annotations

import argparse
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

import lifeos_env
from lifeos.console import console
from lifeos.restore import archive
from lifeos.restore.contract import MigrationError, Table, contract
from lifeos.restore.loader import Loader, server_refusal
from lifeos.settings import Settings
from lifeos.settings import load as load_settings

# Schemas a restore must never replace: live v2, the shadow, the ledger (dbt vars); v2_* holds the work
# schema, backups and rolled-back copies; PostgreSQL's own.
PROTECTED_VARS = ("v2_schema", "marts_schema", "meta_schema")
# What a schema may hold besides the restored tables (and their row and array types) for a restore to replace it.
FOREIGN_OBJECTS = """
select c.relname from pg_class c where c.relnamespace = %(schema)s::regnamespace
  and not (c.relkind = 'r' and c.relname = any(%(tables)s))
union all select p.proname from pg_proc p where p.pronamespace = %(schema)s::regnamespace
union all select 'type ' || t.typname from pg_type t where t.typnamespace = %(schema)s::regnamespace
  and t.typrelid = 0 and not exists (select from pg_type e where e.oid = t.typelem and e.typrelid <> 0)
union all select 'collation ' || collname from pg_collation where collnamespace = %(schema)s::regnamespace
union all select 'operator ' || oprname from pg_operator where oprnamespace = %(schema)s::regnamespace
union all select 'conversion ' || conname from pg_conversion where connamespace = %(schema)s::regnamespace
union all select 'text search configuration ' || cfgname from pg_ts_config where cfgnamespace = %(schema)s::regnamespace
union all select 'text search dictionary ' || dictname from pg_ts_dict where dictnamespace = %(schema)s::regnamespace
union all select 'extension ' || extname from pg_extension where extnamespace = %(schema)s::regnamespace
order by 1 limit 3
"""


def read_live(dsn: str, loader: Loader) -> None:
    """Copy the tables from a live v1 database: a read-only session, one repeatable-read snapshot."""
    source = lifeos_env.connect_read_only(dsn)
    try:
        source.set_session(isolation_level="REPEATABLE READ")
        source.set_client_encoding("UTF8")
        with source.cursor() as cur:
            cur.execute("set local extra_float_digits = 3")  # exact floats, whatever the database's default
            for table in loader.tables.values():
                cur.execute(
                    "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a"
                    " join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace"
                    " where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped"
                    " and a.attgenerated = '' order by a.attnum",
                    (table.schema, table.name),
                )
                columns = cur.fetchall()
                if not columns:
                    continue  # reported by Loader.finish like a dump without the table
                loader.create(table, columns)
                names = sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns)
                with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as spool:
                    cur.copy_expert(
                        sql.SQL("copy (select {} from {}.{}) to stdout")
                        .format(names, sql.Identifier(table.schema), sql.Identifier(table.name))
                        .as_string(cur),
                        spool,
                    )
                    spool.seek(0)
                    loader.load(table, table.label, [name for name, _ in columns], spool, {})
    finally:
        source.close()


def check_schema(cur: psycopg2.extensions.cursor, settings: Settings, schema: str, tables: Iterable[Table]) -> None:
    """Refuse to replace a schema that is the migration's or PostgreSQL's, or holds anything a restore does not
    (tables, functions, types such as enums and domains other tables use, ...)."""
    protected = {settings.var(name) for name in PROTECTED_VARS}
    if schema in protected or schema.startswith(("v2_", "pg_")) or schema == "information_schema":
        raise MigrationError(f"refusing to restore into schema {schema}: it is not v1's; restore into v1")
    cur.execute("select to_regnamespace(%s) is not null", (schema,))
    if not cur.fetchone()[0]:
        return
    cur.execute(FOREIGN_OBJECTS, {"schema": schema, "tables": [table.target for table in tables]})
    others = [name for (name,) in cur.fetchall()]
    if others:
        raise MigrationError(
            f"refusing to restore into schema {schema}: it holds {', '.join(others)}, which no v1 restore made"
        )


def warn_emptied(
    cur: psycopg2.extensions.cursor, settings: Settings, schema: str, counts: list[tuple[Table, int, int]]
) -> list[str]:
    """A data-only dump without rows for a table that has rows in the v1 it replaces or in live v2: name each."""
    warnings = []
    for table, rows, _ in counts:
        if rows or table.schema != "public":
            continue
        for place in (schema, settings.v2_schema):
            name = f"{place}.{table.target}"
            cur.execute("select to_regclass(%s) is not null", (sql.Identifier(place, table.target).as_string(cur),))
            if cur.fetchone()[0]:
                cur.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(place, table.target)))
                if held := cur.fetchone()[0]:
                    warnings.append(f"the data-only dump holds no rows for {table.label}, but {name} has {held}")
    return warnings


def restore(
    settings: Settings, dump: Path | None = None, dsn: str | None = None, schema: str | None = None
) -> dict[str, int]:
    """Restore v1 from a dump file or a live database into `schema` (default: the settings' v1_schema),
    atomically; return rows per table."""
    schema = schema or settings.v1_schema
    tables = contract()
    listing = archive.inspect(Path(dump)) if dsn is None else None
    incoming = f"{schema[:40]}_restore_{uuid.uuid4().hex[:8]}"
    progress = RowsProgress()
    conn = lifeos_env.connect()
    try:
        progress.start()
        conn.set_client_encoding("UTF8")
        with conn, conn.cursor() as cur:
            check_schema(cur, settings, schema, tables.values())
            cur.execute(sql.SQL("create schema {}").format(sql.Identifier(incoming)))
            loader = Loader(cur, incoming, tables, progress=progress.rows)
            if dsn is not None:
                read_live(dsn, loader)
                counts = loader.finish(data_only=False)
            else:
                reader = archive.read_file(Path(dump), listing, loader)
                data_only = not reader.saw_ddl
                counts = loader.finish(data_only, reader.hint())
                reader.check_sections()
                if ignored := reader.ignored():
                    loader.warnings.append("public tables outside the v1 contract, not restored: " + ", ".join(ignored))
                if data_only:
                    loader.warnings += warn_emptied(cur, settings, schema, counts)
            cur.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))
            cur.execute(
                sql.SQL("alter schema {} rename to {}").format(sql.Identifier(incoming), sql.Identifier(schema))
            )
    except psycopg2.Error as error:
        raise MigrationError(f"the server refused the restore: {server_refusal(error)}") from None
    finally:
        progress.stop()
        conn.close()
    report(schema, counts, loader.warnings, dump or "the live database")
    return {table.target: loaded for table, _, loaded in counts}


class RowsProgress(Progress):
    """The restore's progress bar: rows copied in so far, and the table being copied."""

    def __init__(self) -> None:
        rows = TextColumn("{task.completed:,.0f} rows")
        super().__init__(TextColumn("{task.description}"), BarColumn(), rows, TimeElapsedColumn(), console=console)
        self.bar = self.add_task("restore", total=None)
        self.copied: dict[str, int] = {}  # table -> rows copied in

    def rows(self, table: Table, copied: int) -> None:
        self.copied[table.label] = copied
        self.update(self.bar, completed=sum(self.copied.values()), description=f"restore {table.label}")


def report(schema: str, counts: list[tuple[Table, int, int]], warnings: list[str], source: object) -> None:
    for warning in warnings:
        console.print(f"[yellow]warning: {warning}[/yellow]", soft_wrap=True)
    total = sum(loaded for _, _, loaded in counts)
    table = RichTable(title=f"v1 restored into schema {schema} from {source}: {total} rows" + " (EMPTY)" * (not total))
    for heading in ("table", "from", "rows in dump", "rows loaded"):
        table.add_column(heading, justify="right" if heading.startswith("rows") else "left")
    for entry, in_dump, loaded in counts:
        table.add_row(entry.target, entry.label, str(in_dump), str(loaded))
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("dump", nargs="?", type=Path, help="the pg_dump file (plain, custom, tar, directory, CLI)")
    source.add_argument("--from-dsn", metavar="DSN", help="read a live v1 database instead (read-only session)")
    parser.add_argument("--schema", help="the schema to restore into (default: dbt's var v1_schema)")
    args = parser.parse_args(argv)
    try:
        lifeos_env.ensure_target()
        restore(load_settings(), args.dump, args.from_dsn, args.schema)  # this command's own entry builds them
    except MigrationError as error:
        console.print(f"[red]restore failed: {error}[/red]", soft_wrap=True)
        return 1
    return 0
