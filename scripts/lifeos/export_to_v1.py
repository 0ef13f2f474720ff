"""The app's writes to v2 as SQL in v1's shape for v1's database (a rollback to v1): to_v1.sql, read through the
views of the mapping back to v1 (models/to_v1), with the rows and blobs v1 cannot hold listed beside it."""

from __future__ import annotations

import csv
import graphlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from psycopg2 import sql

import lifeos_env
from lifeos.backups import private_file
from lifeos.catalog import Connection, Cursor, column_names, qualified, tables
from lifeos.guard import app_changes, net_changes
from lifeos.upserts import upsert_lines

TO_V1_TAG = "to_v1"  # the models of the mapping back to v1 (models/to_v1)
V1_TABLES_SCHEMA = "public"  # where v1's tables are on Supabase: the schema the export to v1 writes into
# Columns of the models of models/to_v1 that say how to export a row, not v1's own (models/docs.md)
EXPORT_COLUMNS = ("not_representable", "load_order", "upload_blob_from")


def export_to_v1(conn: Connection, source: str, folder: Path) -> str:
    """to_v1.sql from the views of the mapping back to v1 over `source` (inverse_models), read in one snapshot
    with the change log while the app goes on writing (write_v1_changes); return the summary line."""
    conn.rollback()
    conn.set_session(isolation_level="REPEATABLE READ")
    try:
        with conn.cursor() as cur:
            return write_v1_changes(cur, source, app_changes(cur, source), inverse_models(cur, source), folder)
    finally:
        conn.rollback()  # it only read; its temporary views go with it


@dataclass
class InverseModel:
    """One model of the mapping back to v1 (models/to_v1): the v2 table it reads, the v1 table it gives."""

    v2_table: str
    v1_table: str
    view: str  # the temporary view of the export's session that gives its rows
    references: list[str]  # the v1 tables its v1 foreign keys point to (config.meta.v1_references)


def inverse_models(cur: Cursor, source: str) -> dict[str, InverseModel]:
    """The models of the mapping back to v1 (tag to_v1), compiled by dbt (`dbt compile --select tag:to_v1`)
    with the v2 tables of `source` as the marts they read, each created as a temporary view of this session;
    return them by the v2 table each reads. Nothing is written to the database (the shadow and the ledger
    are not touched), no view outlives the export (one over the app's tables would pin the columns it reads),
    and two exports at once do not meet."""
    from dbt.cli.main import dbtRunner  # here: of all the commands, only the export to v1 runs dbt

    arguments = ["--vars", json.dumps({"marts_schema": source}), *lifeos_env.dbt_project_args(), "--quiet"]
    compiled = dbtRunner().invoke(["compile", "--select", f"tag:{TO_V1_TAG}", *arguments])
    if not compiled.success:
        failures = [
            f"{r.node.name}: {r.message}" for r in getattr(compiled.result, "results", []) if r.status == "error"
        ]
        reason = (failures or [str(compiled.exception)])[0].strip().splitlines()[0]
        raise lifeos_env.MigrationError(f"dbt could not compile the mapping back to v1 over schema {source}: {reason}")
    v2_tables = set(tables(cur, source))
    models = {}
    for result in compiled.result.results:
        node = result.node
        (v2_table,) = {name.split(".")[-1] for name in node.depends_on.nodes} & v2_tables  # the mart it inverts
        cur.execute(
            sql.SQL("create temporary view {} as {}").format(sql.Identifier(node.name), sql.SQL(node.compiled_code))
        )
        models[v2_table] = InverseModel(
            v2_table, node.name.removeprefix("v1_"), node.name, node.config.meta["v1_references"]
        )
    return models


def v1_own_columns(cur: Cursor, table: str, mapped: list[str]) -> dict[str, str | None]:
    """The columns of v1 `table` (as restored in schema var v1_schema) that the mapping back does not give,
    each with the value a row written to v1 gets: the one value every row of the restored table holds there
    (Supabase's `user_id default auth.uid()` of a one-person v1), or None when the rows hold NULLs or more
    than one value, or there are no rows: then the insert leaves the column out, and v1's own default (NULL
    without one) fills it, as for a row v1's app inserts."""
    v1_schema = lifeos_env.dbt_var("v1_schema")
    cur.execute("select to_regclass(%s) is not null", (qualified(v1_schema, table).as_string(cur),))
    if not cur.fetchone()[0]:
        raise lifeos_env.MigrationError(f"the restored v1 (schema {v1_schema}) has no table {table}")
    fills = {}
    for column in column_names(cur, v1_schema, table):
        if column not in mapped:
            cur.execute(
                sql.SQL(
                    "select count(*) = count({0}) and count(distinct {0}::text) = 1, min({0}::text) from {1}"
                ).format(sql.Identifier(column), qualified(v1_schema, table))
            )
            shared, value = cur.fetchone()
            fills[column] = value if shared else None
    return fills


@dataclass
class V1Writes:
    """What the export to v1 writes: its SQL lines, and what v1 cannot take, listed."""

    upserts: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    not_representable: list[tuple[str, str, str, str]] = field(default_factory=list)  # v2 table, id, write, why
    blobs: list[tuple[str, str, str, str]] = field(default_factory=list)  # files id, v2 path, bucket, key
    own_columns: list[str] = field(default_factory=list)  # how each column only v1 has is filled, in words


def write_v1_changes(
    cur: Cursor, source: str, changes: dict[str, tuple[int, int]], models: dict[str, InverseModel], folder: Path
) -> str:
    """to_v1.sql: the app's writes in v1's shape (the views of models/to_v1), for v1's database (Supabase:
    its tables in schema public), applied with `psql -f`: one transaction that stops at the first error
    (ON_ERROR_STOP), so a row that breaks one of v1's constraints leaves v1 as it was. Upserts on id in v1's
    foreign-key order (a task's parents before it), then deletes by id in the reverse order. A row v1 cannot
    hold (of a table or a kind only v2 has) is listed in not_representable.csv instead, and each blob v1's
    bucket lacks in blobs_to_upload.csv. Return the summary line."""
    graph = {model.v1_table: set(model.references) for model in models.values()}
    by_v1_table = {model.v1_table: model for model in models.values()}
    ordered = [by_v1_table[name] for name in graphlib.TopologicalSorter(graph).static_order()]
    writes = V1Writes()
    for table in sorted(set(changes) - set(models)):
        for kind in ("changed", "deleted"):
            cur.execute(sql.SQL("{} order by row_id").format(written_ids(source, table, kind)))
            writes.not_representable += [(table, row_id, kind, f"v1 has no table {table}") for (row_id,) in cur]
    for model in ordered:
        if model.v2_table in changes:
            add_v1_upserts(cur, source, model, writes)
    for model in reversed(ordered):
        if model.v2_table in changes:
            cur.execute(
                sql.SQL("select format('delete from %I where id = %L;', {}, row_id) from ({}) d order by 1").format(
                    sql.Literal(model.v1_table),
                    written_ids(source, model.v2_table, "deleted"),
                )
            )
            writes.deletes += [line for (line,) in cur]
    return write_v1_files(writes, source, folder)


def written_ids(source: str, table: str, kind: str) -> sql.Composed:
    """Query of the ids of the rows of source.table the app wrote since its publish, of kind 'changed' or
    'deleted' (net_changes)."""
    return sql.SQL("select row_id from ({}) net where table_name = {} and kind = {}").format(
        net_changes(source), sql.Literal(table), sql.Literal(kind)
    )


def add_v1_upserts(cur: Cursor, source: str, model: InverseModel, writes: V1Writes) -> None:
    """The upserts into v1 of the rows of model.v2_table the app created or changed, as the model gives them
    (parents first: load_order), with v1's own columns filled (v1_own_columns); the rows v1 cannot hold and
    the blobs v1's bucket lacks, listed."""
    columns = column_names(cur, "pg_temp", model.view)
    mapped = [column for column in columns if column not in EXPORT_COLUMNS]
    fills = v1_own_columns(cur, model.v1_table, mapped)
    writes.own_columns += [
        f"{model.v1_table}.{column} = {value!r}, as in every v1 row" if value is not None
        else f"{model.v1_table}.{column}: v1's default"
        for column, value in fills.items()
    ]  # fmt: skip
    rows = sql.SQL("select * from {} t where t.id::text in ({})").format(
        qualified("pg_temp", model.view), written_ids(source, model.v2_table, "changed")
    )
    target = sql.SQL("quote_ident({})").format(sql.Literal(model.v1_table))
    shared = {column: value for column, value in fills.items() if value is not None}
    held = sql.SQL("{} and t.not_representable is null").format(rows)
    cur.execute(upsert_lines(cur, target, mapped, ["id"], held, shared, order_by=["load_order", "id"]))
    writes.upserts += [line for (line,) in cur]
    cur.execute(sql.SQL("select id::text, not_representable from ({} and t.not_representable is not null) t"
                        " order by 1").format(rows))  # fmt: skip
    writes.not_representable += [(model.v2_table, row_id, "changed", reason) for row_id, reason in cur]
    if "upload_blob_from" in columns:
        cur.execute(sql.SQL("select id::text, upload_blob_from, {}, storage_path from ({}) t"
                            " where upload_blob_from is not null order by 1").format(
            sql.Literal(lifeos_env.dbt_var("storage_bucket")), held))  # fmt: skip
        writes.blobs += cur.fetchall()


def write_v1_files(writes: V1Writes, source: str, folder: Path) -> str:
    """to_v1.sql, and the listings when they list anything; return the summary line."""
    for name, header, listed in (
        ("not_representable.csv", ("v2_table", "id", "write", "reason"), writes.not_representable),
        ("blobs_to_upload.csv", ("file_id", "v2_path", "bucket", "key"), writes.blobs),
    ):
        if listed:
            with private_file(folder / name, "w") as listing:
                csv.writer(listing).writerows([header, *listed])
    with private_file(folder / "to_v1.sql", "w") as statements:
        statements.write(
            f"-- The app's writes to v2 (schema {source} of database {os.environ['PGDATABASE']}) since it was"
            f" published, in v1's shape ({datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC).\n"
            f"-- Apply to v1 (its tables in schema {V1_TABLES_SCHEMA}, as search_path says below):"
            "  psql <v1 connection> -f to_v1.sql\n"
            "-- One transaction: psql stops at the first statement v1 refuses, and nothing is applied.\n"
            f"-- v1's own columns: {'; '.join(sorted(set(writes.own_columns))) or 'none beyond the mapped ones'}.\n"
            f"-- Not written, as v1 cannot hold them: {len(writes.not_representable)} rows (not_representable.csv).\n"
            f"-- Blobs v1's bucket does not hold: {len(writes.blobs)} (blobs_to_upload.csv).\n"
            f"\\set ON_ERROR_STOP on\nbegin;\nset local search_path = {V1_TABLES_SCHEMA};\n"
        )
        statements.writelines(line + "\n" for line in writes.upserts + writes.deletes)
        statements.write("commit;\n")
    summary = (
        f"wrote the app's writes to schema {source} in v1's shape to {folder / 'to_v1.sql'}:"
        f" {len(writes.upserts)} rows to insert or update, {len(writes.deletes)} to delete"
    )
    if writes.not_representable:
        summary += f"; {len(writes.not_representable)} rows v1 cannot hold are listed in not_representable.csv"
    if writes.blobs:
        summary += f"; upload the {len(writes.blobs)} blobs of blobs_to_upload.csv to their bucket"
    return summary
