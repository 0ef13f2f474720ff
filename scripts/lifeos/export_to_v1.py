"""What v1 lacks of live v2, as SQL in v1's shape for v1's database (a rollback to v1): to_v1.sql, from state.

Live v2 read through the views of the mapping back to v1 (models/rollback) is compared with the v1 last restored
(schema var v1_schema), so the export covers every write of the app's since the first cut-over, whatever came
between (publishes, carry-forwards, rollbacks): no change log is replayed. The rows and blobs v1 cannot hold
are listed beside it.
"""

from __future__ import annotations

import csv
import graphlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
from psycopg2 import sql

import lifeos_env
from lifeos.backups import private_file
from lifeos.catalog import DERIVED, Connection, Cursor, column_names, qualified, schema_exists, tables
from lifeos.runs import BUILDS, last_run, meta, published_by
from lifeos.settings import Settings
from lifeos.upserts import comment, upsert_lines

ROLLBACK_TAG = "rollback"  # the models of the mapping back to v1 (models/rollback)
V1_TABLES_SCHEMA = "public"  # where v1's tables are on Supabase: the schema the export to v1 writes into
# Columns of the models of models/rollback that say how to export a row, not v1's own (models/docs.md)
EXPORT_COLUMNS = ("not_representable", "load_order", "upload_blob_from")


def export_to_v1(conn: Connection, settings: Settings, source: str) -> V1Writes:
    """What v1 lacks of `source` (v1_writes), from the views of the mapping back to v1 over it (inverse_models)
    and the restored v1, read in one snapshot while the app goes on writing; nothing is written."""
    v1_schema = settings.v1_schema
    conn.rollback()
    conn.set_session(isolation_level="REPEATABLE READ")
    try:
        with conn.cursor() as cur:
            if not schema_exists(cur, v1_schema):
                raise lifeos_env.MigrationError(
                    f"there is no restored v1 (schema {v1_schema}) to compare live v2 with and read v1's own"
                    " columns from: restore the v1 dump first (scripts/restore_v1.py)"
                )
            check_built_from(cur, settings, source)
            return v1_writes(cur, settings, source, inverse_models(cur, source))
    finally:
        conn.rollback()  # it only read; its temporary views go with it


def check_built_from(cur: Cursor, settings: Settings, source: str) -> None:
    """Refuse unless the restored v1 is the one `source` was built from: each run restores v1 and then builds,
    so the last build must be the build the publish of `source` named. Against a later dump (a rehearsal's),
    v1's own changes since would look like writes of the app's to undo."""
    publish = published_by(cur, settings, source)
    if publish is None:
        return  # never published: the shadow of the last build
    cur.execute(sql.SQL("select build_run_id from {} where run_id = %s").format(meta(settings, "runs")), (publish,))
    (built_from,) = cur.fetchone()
    last_build = last_run(cur, settings, BUILDS).run_id
    if built_from is not None and built_from != last_build:
        raise lifeos_env.MigrationError(
            f"the restored v1 (schema {settings.v1_schema}) is the dump of build {last_build}, not the one schema"
            f" {source} was built from (build {built_from}): v1's changes since would look like writes to undo;"
            " carry the app's writes into that dump first (scripts/migrate --dump <that dump> --carry-forward),"
            " then export"
        )


@dataclass
class InverseModel:
    """One model of the mapping back to v1 (models/rollback): the v2 table it reads, the v1 table it gives."""

    v2_table: str
    v1_table: str
    view: str  # the temporary view of the export's session that gives its rows
    references: list[str]  # the v1 tables its v1 foreign keys point to (config.meta.v1_references)


def inverse_models(cur: Cursor, source: str) -> dict[str, InverseModel]:
    """The models of the mapping back to v1 (tag rollback), compiled by dbt (`dbt compile --select tag:rollback`)
    with the v2 tables of `source` as the marts they read, each created as a temporary view of this session;
    return them by the v2 table each reads. Nothing is written to the database (the shadow and the ledger
    are not touched), no view outlives the export (one over the app's tables would pin the columns it reads),
    and two exports at once do not meet."""
    from dbt.cli.main import dbtRunner  # here: of all the commands, only the export to v1 runs dbt

    arguments = ["--vars", json.dumps({"marts_schema": source}), *lifeos_env.dbt_project_args(), "--quiet"]
    compiled = dbtRunner().invoke(["compile", "--select", f"tag:{ROLLBACK_TAG}", *arguments])
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
        try:
            cur.execute(sql.SQL("create temporary view {} as {}").format(
                sql.Identifier(node.name), sql.SQL(node.compiled_code)))  # fmt: skip
        except psycopg2.Error as error:  # e.g. v1 restored by hand since the build: its staging views are gone
            raise lifeos_env.MigrationError(
                f"cannot read schema {source} in v1's shape ({node.name}):"
                f" {str(error.pgerror or error).strip().splitlines()[0]}; build v2 from the restored v1 first"
                " (scripts/migrate --no-publish)"
            ) from error
        models[v2_table] = InverseModel(
            v2_table, node.name.removeprefix("rollback_v1__"), node.name, node.config.meta["v1_references"]
        )
    return models


@dataclass
class V1Writes:
    """What the export to v1 writes: its SQL lines, and what v1 cannot take, listed."""

    upserts: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    not_representable: list[tuple[str, str, str]] = field(default_factory=list)  # v2 table, id, why
    blobs: list[tuple[str, str, str, str]] = field(default_factory=list)  # files id, v2 path, bucket, key
    own_columns: list[str] = field(default_factory=list)  # how each column only v1 has is filled, in words
    per_table: dict[str, tuple[int, int]] = field(default_factory=dict)  # v1 table: rows to upsert, to delete


def v1_writes(cur: Cursor, settings: Settings, source: str, models: dict[str, InverseModel]) -> V1Writes:
    """What v1 lacks of `source`: its rows in v1's shape (the views of models/rollback) against the v1 last
    restored (schema var v1_schema), as upserts of the rows v1 lacks or holds otherwise, in v1's foreign-key
    order (a task's parents before it), then deletes of the rows v1 holds and v2 does not, in the reverse
    order. The rows the migration kept out of v2 (rejected, accepted losses: <work>.migration_rejects) are no
    deletes, and a reference it set to NULL (adjusted) is no change. A row of a table or a kind only v2 has
    is listed instead (not_representable), and each blob v1's bucket lacks."""
    v1_schema = settings.v1_schema
    rejects = migration_rejects(cur, settings)
    graph = {model.v1_table: set(model.references) for model in models.values()}
    by_v1_table = {model.v1_table: model for model in models.values()}
    ordered = [by_v1_table[name] for name in graphlib.TopologicalSorter(graph).static_order()]
    writes = V1Writes()
    for table in sorted(set(tables(cur, source)) - set(models) - set(DERIVED)):
        cur.execute(sql.SQL("select id::text from {} order by 1").format(qualified(source, table)))
        writes.not_representable += [(table, row_id, f"v1 has no table {table}") for (row_id,) in cur]
    user = V1User(cur, v1_schema)
    for model in ordered:
        upserts = len(writes.upserts)
        add_v1_upserts(cur, settings, model, rejects, user, writes)
        writes.per_table[model.v1_table] = (len(writes.upserts) - upserts, 0)
    for model in reversed(ordered):
        cur.execute(
            sql.SQL(
                "select format('delete from %I where id = %L;', {name}, v.id) from {v1} v"
                " where v.id is not null and not exists (select from {view} t where t.id = v.id)"
                " and not exists (select from ({rejects}) r where r.v1_table = {name} and r.action = 'rejected'"
                " and r.v1_id::text = v.id::text) order by v.id"
            ).format(
                name=sql.Literal(model.v1_table),
                v1=qualified(v1_schema, model.v1_table),
                view=qualified("pg_temp", model.view),
                rejects=rejects,
            )
        )
        deletes = [line for (line,) in cur]
        writes.deletes += deletes
        writes.per_table[model.v1_table] = (writes.per_table[model.v1_table][0], len(deletes))
    return writes


def migration_rejects(cur: Cursor, settings: Settings) -> sql.Composed:
    """Query of the v1 rows the last build kept out of v2 or adjusted (<work schema>.migration_rejects)."""
    work = last_run(cur, settings, BUILDS).schemas["work"]
    rejects = qualified(work, "migration_rejects")
    cur.execute("select to_regclass(%s) is not null", (rejects.as_string(cur),))
    if not cur.fetchone()[0]:
        raise lifeos_env.MigrationError(
            f"there is no {work}.migration_rejects to tell the rows the migration kept out of v2 from the rows the"
            " app deleted: build v2 from the restored v1 first (scripts/migrate --no-publish)"
        )
    return sql.SQL("select v1_table, v1_id, action from {}").format(rejects)


class V1User:
    """v1's one user (Supabase's auth.users: one person), as every row of the restored v1 names it in its
    `user_id` columns: the value of those columns in the rows the export adds to v1, whether or not their
    table has rows."""

    COLUMN = "user_id"

    def __init__(self, cur: Cursor, v1_schema: str) -> None:
        cur.execute(
            "select table_name from information_schema.columns where table_schema = %s and column_name = %s order by 1",
            (v1_schema, self.COLUMN),
        )
        named = [sql.SQL("select {0}::text from {1} where {0} is not null").format(
            sql.Identifier(self.COLUMN), qualified(v1_schema, table)) for (table,) in cur.fetchall()]  # fmt: skip
        self.users: list[str] = []
        if named:
            cur.execute(sql.SQL("select distinct * from ({}) u order by 1").format(sql.SQL(" union ").join(named)))
            self.users = [user for (user,) in cur.fetchall()]

    def of(self, table: str, adding: int) -> str | None:
        """The user of the rows the export writes to v1 `table` (an insert of a row v1 deleted meanwhile too);
        refused, unless v1 has exactly one, when it adds `adding` > 0 new rows there."""
        if len(self.users) != 1 and adding:
            found = f"{len(self.users)} users ({', '.join(self.users)})" if self.users else "no user"
            raise lifeos_env.MigrationError(
                f"v1 has {found}: no one value of {self.COLUMN} in the rows of the restored v1 to give"
                f" {table}.{self.COLUMN} of the {adding} rows the app added to {table}"
            )
        return self.users[0] if len(self.users) == 1 else None


def v1_own_columns(cur: Cursor, v1_schema: str, table: str, mapped: list[str]) -> dict[str, str | None]:
    """The columns of v1 `table` (as restored in schema `v1_schema`) that the mapping back does not give,
    each with the value a row added to v1 gets: the one value every row of the restored table holds there
    (a dump's extra column with a default), or None when the rows hold NULLs or more than one value, or there
    are no rows: then the insert leaves the column out, and v1's own default (NULL without one) fills it, as
    for a row v1's app inserts. (`user_id`, v1's one user, is V1User's.)"""
    cur.execute("select to_regclass(%s) is not null", (qualified(v1_schema, table).as_string(cur),))
    if not cur.fetchone()[0]:
        raise lifeos_env.MigrationError(f"the restored v1 (schema {v1_schema}) has no table {table}")
    fills = {}
    for column in column_names(cur, v1_schema, table):
        if column not in mapped and column != V1User.COLUMN:
            cur.execute(
                sql.SQL(
                    "select count(*) = count({0}) and count(distinct {0}::text) = 1, min({0}::text) from {1}"
                ).format(sql.Identifier(column), qualified(v1_schema, table))
            )
            shared, value = cur.fetchone()
            fills[column] = value if shared else None
    return fills


def add_v1_upserts(
    cur: Cursor, settings: Settings, model: InverseModel, rejects: sql.Composed, user: V1User, writes: V1Writes
) -> None:
    """The upserts into v1 of the rows of the model v1 lacks or holds otherwise (parents first: load_order):
    a new row whole, with v1's own columns filled (v1_own_columns, V1User); a row v1 holds, only the columns
    that differ. The rows v1 cannot hold and the blobs v1's bucket lacks, listed."""
    v1_schema = settings.v1_schema
    columns = column_names(cur, "pg_temp", model.view)
    v1_columns = column_names(cur, v1_schema, model.v1_table)
    mapped = [column for column in columns if column not in EXPORT_COLUMNS and column in v1_columns]
    fills = {
        column: value
        for column, value in v1_own_columns(cur, v1_schema, model.v1_table, mapped).items()
        if value is not None
    }
    view, restored = qualified("pg_temp", model.view), qualified(v1_schema, model.v1_table)
    cur.execute(sql.SQL("select t.id::text, t.not_representable from {} t where t.not_representable is not null"
                        " order by 1").format(view))  # fmt: skip
    writes.not_representable += [(model.v2_table, row_id, reason) for row_id, reason in cur]
    differs = [
        sql.SQL("case when t.{0}::text is distinct from v.{0}::text and not (a.v1_id is not null and t.{0} is null)"
                " then {1} end").format(sql.Identifier(column), sql.Literal(column))
        for column in mapped if column != "id"
    ]  # fmt: skip
    lacking = sql.SQL(
        "select t.*, v.id is null as is_new,"
        " case when v.id is null then {every} else array_remove(array[{differs}]::text[], null) end as changed"
        " from {view} t left join {restored} v on v.id = t.id"
        " left join (select v1_id::text from ({rejects}) r where r.v1_table = {name} and r.action = 'adjusted') a"
        " on a.v1_id = t.id::text where t.not_representable is null"
    ).format(
        every=sql.Literal([column for column in mapped if column != "id"]),
        differs=sql.SQL(", ").join(differs) or sql.SQL("null"), view=view, restored=restored, rejects=rejects,
        name=sql.Literal(model.v1_table),
    )  # fmt: skip
    rows = sql.SQL("select * from ({}) t where t.is_new or cardinality(t.changed) > 0").format(lacking)
    if V1User.COLUMN in v1_columns and V1User.COLUMN not in mapped:
        cur.execute(sql.SQL("select count(*) filter (where is_new) from ({}) t").format(rows))
        owner = user.of(model.v1_table, cur.fetchone()[0])
        fills |= {V1User.COLUMN: owner} if owner else {}
    writes.own_columns += [f"{model.v1_table}.{column} = {value!r}" for column, value in fills.items()]
    cur.execute(upsert_lines(cur, sql.SQL("quote_ident({})").format(sql.Literal(model.v1_table)), mapped, ["id"],
                             rows, fills, order_by=["load_order", "id"], changed="changed"))  # fmt: skip
    writes.upserts += [line for (line,) in cur]
    if "upload_blob_from" in columns:
        cur.execute(sql.SQL("select id::text, upload_blob_from, {}, storage_path from ({}) t"
                            " where upload_blob_from is not null order by 1").format(
            sql.Literal(settings.storage_bucket), rows))  # fmt: skip
        writes.blobs += cur.fetchall()


def write_v1_files(writes: V1Writes, source: str, folder: Path, database: str) -> str:
    """to_v1.sql (of schema `source` of `database`), and the listings when they list anything; return the summary
    line."""
    for name, header, listed in (
        ("not_representable.csv", ("v2_table", "id", "reason"), writes.not_representable),
        ("blobs_to_upload.csv", ("file_id", "v2_path", "bucket", "key"), writes.blobs),
    ):
        if listed:
            with private_file(folder / name, "w") as listing:
                csv.writer(listing).writerows([header, *listed])
    with private_file(folder / "to_v1.sql", "w") as statements:
        statements.writelines(
            comment(line)
            for line in (
                f"What v1 lacks of v2 (schema {source} of database {database}), in v1's shape:"
                f" live v2 against the v1 last restored ({datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC).",
                f"Apply to v1 (its tables in schema {V1_TABLES_SCHEMA}, as search_path says below):"
                " psql <v1 connection> -f to_v1.sql",
                "One transaction: psql stops at the first statement v1 refuses, and nothing is applied.",
                "A row v1 holds gets only the columns that differ; the others stay as v1 has them now.",
                f"v1's own columns of new rows: {'; '.join(sorted(set(writes.own_columns))) or 'v1 defaults'}.",
                f"Not written, as v1 cannot hold them: {len(writes.not_representable)} rows (not_representable.csv).",
                f"Blobs v1's bucket does not hold: {len(writes.blobs)} (blobs_to_upload.csv).",
            )
        )
        statements.write(f"\\set ON_ERROR_STOP on\nbegin;\nset local search_path = {V1_TABLES_SCHEMA};\n")
        statements.writelines(line + "\n" for line in writes.upserts + writes.deletes)
        statements.write("commit;\n")
    summary = (
        f"wrote what v1 lacks of schema {source}, in v1's shape, to {folder / 'to_v1.sql'}:"
        f" {len(writes.upserts)} rows to insert or update, {len(writes.deletes)} to delete"
    )
    if writes.not_representable:
        summary += f"; {len(writes.not_representable)} rows v1 cannot hold are listed in not_representable.csv"
    if writes.blobs:
        summary += f"; upload the {len(writes.blobs)} blobs of blobs_to_upload.csv to their bucket"
    return summary
