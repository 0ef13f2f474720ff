"""The two baselines the migration is measured against (issue 9).

(a) The physical floor: the v1 rows loaded by a stripped plain `psql -f`,
    copied into unconstrained v2-shaped tables with INSERT ... SELECT, then the
    same indexes and constraints as the built v2 schema added afterwards.
(b) The plan's own approach (section 5.2): a row-at-a-time Python loader:
    SELECT *, transform in Python, one INSERT per row through psycopg2.

Both read the v2 DDL from the schema dbt built (`v2_shadow`), so they build
exactly the same tables, keys and indexes. Floor (a) also times, apart, the one
other table the build fills: search_index, as the build makes it, by CREATE
TABLE AS (parallel workers allowed) of the build's own compiled SELECT (the
tsvector of every task, note, bookmark, project and capture item), then its
keys and GIN index, so the build can be compared with the same end state.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import psycopg2.extensions
import psycopg2.extras

import lifeos_env

Cursor = psycopg2.extensions.cursor
MAPPED = {  # v2 table: v1 table, in FK order
    "domains": "domains", "areas": "areas", "projects": "projects", "context_types": "context_types",
    "tasks": "tasks", "notes": "notes", "capture": "capture", "bookmarks": "links", "files": "files",
    "daily_focus": "daily_focus", "reminders": "reminders",
}  # fmt: skip
COPY_BLOCK = re.compile(r"^COPY public\.(\w+) ", re.MULTILINE)


def strip_dump(dump: Path, stripped: Path, schema: str) -> None:
    """Keep only the COPY blocks of the 11 v1 tables, aimed at `schema`."""
    keep = False
    with dump.open() as src, stripped.open("w") as out:
        for line in src:
            match = COPY_BLOCK.match(line)
            if match and match.group(1) in MAPPED.values():
                keep = True
                line = line.replace("COPY public.", f"COPY {schema}.", 1)
            if keep:
                out.write(line)
                keep = line != "\\.\n"


def v2_ddl(cur: Cursor, shadow: str, tables: list[str]) -> tuple[list[str], list[str]]:
    """The constraints and indexes of `tables` (FKs among them only), as statements on schema `{schema}`."""
    cur.execute(
        """
        select c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
        from pg_constraint c join pg_namespace n on n.oid = c.connamespace
        where n.nspname = %s and c.contype in ('p', 'u', 'c', 'f') and c.conrelid <> 0
            and c.conrelid::regclass::text = any(%s)
            and (c.confrelid = 0 or c.confrelid::regclass::text = any(%s))
        order by c.contype = 'f', 1, 2
        """,
        (shadow, qualified := [f"{shadow}.{table}" for table in tables], qualified),
    )
    constraints = [
        f"alter table {{schema}}.{table.split('.')[-1]} add constraint {name} "
        + definition.replace(f"{shadow}.", "{schema}.")
        for table, name, definition in cur.fetchall()
    ]
    cur.execute(
        """
        select pg_get_indexdef(i.indexrelid) from pg_index i
        where i.indrelid::regclass::text = any(%s)
            and not exists (select from pg_constraint k where k.conindid = i.indexrelid)
        """,
        (qualified,),
    )
    indexes = [row[0].replace(f"{shadow}.", "{schema}.") for row in cur.fetchall()]
    return constraints, indexes


def v2_columns(cur: Cursor, shadow: str, table: str) -> list[str]:
    cur.execute(
        "select column_name from information_schema.columns where table_schema = %s and table_name = %s"
        " order by ordinal_position",
        (shadow, table),
    )
    return [name for (name,) in cur.fetchall()]


def recreate(cur: Cursor, schema: str, shadow: str, including: str = "") -> None:
    cur.execute(f"drop schema if exists {schema} cascade; create schema {schema}")
    for table in MAPPED:
        cur.execute(f"create table {schema}.{table} (like {shadow}.{table} {including})")


FLOOR_SELECT = {  # the v2 columns from v1 ones, with the plan's generated values as plain expressions
    "projects": {"target_date": "due_date", "priority": "3", "start_date": "null", "release_id": "null"},
    "bookmarks": {"updated_at": "created_at", "folder_id": "null", "favicon_url": "null", "tags": "null"},
    "capture": {"source": "'web'", "updated_at": "created_at", "domain_id": "null", "project_id": "null"},
    # v2 keeps one active entry per task and day (daily_focus_focus_date_task_id_key): a repeat is inactive
    "daily_focus": {
        "domain_id": "null",
        "is_active": "row_number() over (partition by focus_date, task_id order by id) = 1",
    },
    "context_types": {"created_at": "now()", "updated_at": "now()"},
    "reminders": {"entity_type": "'task'", "entity_id": "task_id"},
}


def copy_pairs(
    v2_table: str, v1_table: str, columns: list[str], v1_columns: set[tuple[str, str]]
) -> list[tuple[str, str]]:
    """(v2 column, expression over the v1 row) for each v2 column the floor fills; the rest are left to defaults."""
    known = {"updated_at": "created_at", "is_active": "true", "sort_order": "0"} | FLOOR_SELECT.get(v2_table, {})
    return [
        (column, known.get(column, column)) for column in columns if column in known or (v1_table, column) in v1_columns
    ]


def floor_a(dump: Path, shadow: str, psql: str, search_index_sql: Path) -> dict[str, float]:
    """Time (a): stripped psql load, INSERT ... SELECT, then keys and indexes; total is their sum.
    Then, apart, search_index from those tables by `search_index_sql` (the build's compiled model)."""
    timings: dict[str, float] = {}
    stripped = dump.with_suffix(".stripped.sql")
    strip_dump(dump, stripped, "floor_v1")
    with lifeos_env.transaction() as cur:
        cur.execute("drop schema if exists floor_v1 cascade; create schema floor_v1")
        for table in MAPPED.values():
            cur.execute(f"create table floor_v1.{table} (like v1.{table})")
        recreate(cur, "floor_v2", shadow, "including defaults")
        columns = {table: v2_columns(cur, shadow, table) for table in MAPPED}
        cur.execute("select column_name, table_name from information_schema.columns where table_schema = 'v1'")
        v1_columns = {(table, column) for column, table in cur.fetchall()}
        constraints, indexes = v2_ddl(cur, shadow, list(MAPPED))
    start = time.perf_counter()
    subprocess.run([psql, "-q", "-v", "ON_ERROR_STOP=1", "-f", str(stripped)], check=True)
    timings["load"] = time.perf_counter() - start
    start = time.perf_counter()
    with lifeos_env.transaction() as cur:
        for v2_table, v1_table in MAPPED.items():
            pairs = copy_pairs(v2_table, v1_table, columns[v2_table], v1_columns)
            target = ", ".join(column for column, _ in pairs)
            select = ", ".join(expression for _, expression in pairs)
            cur.execute(f"insert into floor_v2.{v2_table} ({target}) select {select} from floor_v1.{v1_table}")
    timings["insert_select"] = time.perf_counter() - start
    start = time.perf_counter()
    with lifeos_env.transaction() as cur:
        for statement in constraints + indexes:
            cur.execute(statement.format(schema="floor_v2"))
    timings["keys_and_indexes"] = time.perf_counter() - start
    timings["total"] = sum(timings.values())
    with lifeos_env.transaction() as cur:  # the other tables search_index reads, empty after a migration as in v2
        cur.execute("select tablename from pg_tables where schemaname = %s", (shadow,))
        tables = [table for (table,) in cur.fetchall() if not table.startswith("search_index")]
        for table in set(tables) - set(MAPPED):
            cur.execute(f"create table floor_v2.{table} (like {shadow}.{table})")
    select = search_index_sql.read_text()
    for table in tables:  # the model's functions (fold_accents, ...) stay the shadow's
        select = select.replace(f'"{shadow}"."{table}"', f'"floor_v2"."{table}"')
    start = time.perf_counter()
    with lifeos_env.transaction() as cur:
        target = ", ".join(v2_columns(cur, shadow, "search_index"))
        cur.execute(f"create table floor_v2.search_index as select {target} from ({select}) as build")
        keys, indexes = v2_ddl(cur, shadow, ["search_index"])
        for statement in keys + indexes:
            cur.execute(statement.format(schema="floor_v2"))
    timings["search_index"] = time.perf_counter() - start
    with lifeos_env.transaction() as cur:
        cur.execute("drop schema floor_v1 cascade; drop schema floor_v2 cascade")
    return timings


Row = dict[str, Any]


def sort_orders(rows: list[Row], scope: Callable[[Row], tuple[Any, ...]]) -> None:
    """10, 20, 30 ... within each scope by created_at, then id, computed in Python."""
    groups: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for row in rows:
        groups[scope(row)].append(row)
    for members in groups.values():
        for position, row in enumerate(sorted(members, key=lambda r: (r["created_at"], str(r["id"])))):
            row["sort_order"] = 10 * (position + 1)


def local_path(storage_path: str, root: str, bucket: str) -> str:
    path = storage_path.split("?", 1)[0]
    marker = f"/{bucket}/" if "://" in path else f"{bucket}/"
    key = path.split(marker, 1)[1] if marker in path else path
    return f"{root}/{unquote(key)}"


def loader_b(shadow: str, root: str = "/opt/lifeos/storage/files", bucket: str = "life-os-files") -> float:
    """Time (b): the plan's row-at-a-time Python loader into loader_v2, keys in place first."""
    with lifeos_env.transaction() as cur:
        recreate(cur, "loader_v2", shadow, "including all")
        constraints, _ = v2_ddl(cur, shadow, list(MAPPED))
        for statement in constraints:
            if " FOREIGN KEY " in statement:
                cur.execute(statement.format(schema="loader_v2"))
        columns = {table: v2_columns(cur, shadow, table) for table in MAPPED}
    task_domain: dict[Any, Any] = {}

    def parents_first(rows: list[Row]) -> list[Row]:
        ordered: list[Row] = []
        done: set[Any] = set()
        while rows:
            ready = [r for r in rows if r["parent_id"] is None or r["parent_id"] in done]
            done.update(r["id"] for r in ready)
            ordered += ready
            rows = [r for r in rows if r["id"] not in done]
        return ordered

    def transform(table: str, rows: list[Row]) -> list[Row]:
        for row in rows:
            row.setdefault("updated_at", row.get("created_at"))
            row["is_active"] = True
            row["sort_order"] = 0
        if table == "domains":
            sort_orders(rows, lambda r: ())
        elif table == "areas":
            sort_orders(rows, lambda r: (r["domain_id"],))
        elif table == "projects":
            sort_orders(rows, lambda r: (r["domain_id"], r["area_id"]))
            for row in rows:
                row |= {"target_date": row["due_date"], "priority": 3}
        elif table == "tasks":
            sort_orders(rows, lambda r: (r["project_id"] or r["domain_id"], r["parent_id"]))
            task_domain.update((row["id"], row["domain_id"]) for row in rows)
            rows = parents_first(rows)
        elif table == "context_types":
            for position, row in enumerate(sorted(rows, key=lambda r: (not r["is_system"], r["value"]))):
                row["sort_order"] = 10 * (position + 1)
        for row in rows:
            if table == "capture":
                row |= {"source": "web", "updated_at": row["created_at"]}
            elif table == "files":
                row["storage_path"] = local_path(row["storage_path"], root, bucket)
            elif table == "daily_focus":
                row["domain_id"] = task_domain.get(row["task_id"])
            elif table == "reminders":
                row |= {"entity_type": "task", "entity_id": row["task_id"]}
        return rows

    start = time.perf_counter()
    conn = lifeos_env.connect()
    with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        for v2_table, v1_table in MAPPED.items():
            cur.execute(f"select * from v1.{v1_table}")
            rows = transform(v2_table, [dict(row) for row in cur.fetchall()])
            if not rows:
                continue
            wanted = [column for column in columns[v2_table] if column in rows[0]]  # the rest take their defaults
            statement = (
                f"insert into loader_v2.{v2_table} ({', '.join(wanted)}) values ({', '.join(['%s'] * len(wanted))})"
            )
            for row in rows:
                cur.execute(statement, [row.get(column) for column in wanted])
    conn.close()
    elapsed = time.perf_counter() - start
    with lifeos_env.transaction() as cur:
        cur.execute("drop schema loader_v2 cascade")
    return elapsed


# search_index's floor (issue 30): each source's document as plain to_tsvector, written here, not the build's query
FLOOR_SEARCH = {  # v2 table: title, keywords, body (over its row, x)
    "tasks": ("x.title", "array_to_string(x.tags, ' ')", "x.description"),
    "notes": ("x.title", "array_to_string(x.tags, ' ')", "x.body"),
    "bookmarks": ("x.label", "x.url", "x.description"),
    "projects": ("x.name", "null", "x.description"),
    "capture": ("null", "null", "x.raw_text"),
    "files": ("x.original_filename", "array_to_string(x.tags, ' ')", "x.description"),
}


def floor_search_select(table: str) -> str:
    """One source's search rows from floor_v2, is_active the item's own and its domain's and project's."""
    title, keywords, body = (f"coalesce({column}::text, '')" for column in FLOOR_SEARCH[table])
    project = "x.id" if table == "projects" else "x.project_id"
    return f"""
        select md5('{table}' || x.id)::uuid as id, '{table}'::text as entity_type, x.id as entity_id,
            x.domain_id, {project} as project_id, {title} as title,
            x.is_active and coalesce(d.is_active, true) and coalesce(p.is_active, true) as is_active,
            setweight(to_tsvector('english', {title}), 'A') || setweight(to_tsvector('english', {keywords}), 'B')
                || setweight(to_tsvector('english', {body}), 'C') as document,
            x.created_at, x.updated_at
        from floor_v2.{table} as x
        left join floor_v2.domains as d on d.id = x.domain_id
        left join floor_v2.projects as p on p.id = {project}"""


def floor_end_state(dump: Path, live: str, psql: str, pg_dump: str, out: Path) -> dict[str, float]:
    """Issue 30's floor of the end state, none of it through the project's SQL: the stripped dump loaded by
    `psql -f`, each v2 table a plain CREATE TABLE AS of its v1 table (columns typed and defaulted as in `live`),
    live v2's keys and then its other indexes added, search_index built set-based by floor_search_select, and
    `pg_dump -Fc` of the result into `out`. Times each part; total is their sum. Times apart (pg_dump_lean) the
    same dump without search_index's rows, as the project's backup leaves them out."""
    stripped = dump.with_suffix(".stripped.sql")
    strip_dump(dump, stripped, "floor_v1")
    with lifeos_env.transaction() as cur:
        cur.execute("set local search_path = pg_catalog")  # every name below comes out schema-qualified
        cur.execute("drop schema if exists floor_v1 cascade; drop schema if exists floor_v2 cascade")
        cur.execute("create schema floor_v1; create schema floor_v2")
        for table in MAPPED.values():
            cur.execute(f"create table floor_v1.{table} (like v1.{table})")
        cur.execute("select column_name, table_name from information_schema.columns where table_schema = 'v1'")
        v1_columns = {(table, column) for column, table in cur.fetchall()}
        selects = {}
        for v2_table, v1_table in MAPPED.items():
            cur.execute(
                "select a.attname, format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid)"
                " from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum"
                " where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped order by a.attnum",
                (f"{live}.{v2_table}",),
            )
            typed = cur.fetchall()
            filled = dict(copy_pairs(v2_table, v1_table, [name for name, _, _ in typed], v1_columns))
            selects[v2_table] = ", ".join(
                f"({filled.get(name, default or 'null')})::{type_} as {name}" for name, type_, default in typed
            )
        keys, indexes = v2_ddl(cur, live, list(MAPPED))
    timings: dict[str, float] = {}

    def timed(part: str, statements: list[str]) -> None:
        start = time.perf_counter()
        with lifeos_env.transaction() as cur:
            for statement in statements:
                cur.execute(statement)
        timings[part] = time.perf_counter() - start

    start = time.perf_counter()
    subprocess.run([psql, "-q", "-v", "ON_ERROR_STOP=1", "-f", str(stripped)], check=True)
    timings["load"] = time.perf_counter() - start
    timed("copy", [f"create table floor_v2.{t} as select {selects[t]} from floor_v1.{v1}" for t, v1 in MAPPED.items()])
    timed("keys", [statement.format(schema="floor_v2") for statement in keys])
    timed("indexes", [statement.format(schema="floor_v2") for statement in indexes])
    search = " union all ".join(floor_search_select(table) for table in FLOOR_SEARCH)
    timed("search_index", [
        f"create table floor_v2.search_index as {search}",
        "alter table floor_v2.search_index add primary key (id), add unique (entity_type, entity_id)",
        "create index on floor_v2.search_index using gin (document)",
    ])  # fmt: skip
    start = time.perf_counter()
    subprocess.run([pg_dump, "-Fc", "--schema=floor_v2", f"--file={out}"], check=True)
    timings["pg_dump"] = time.perf_counter() - start
    timings["dump_mib"] = out.stat().st_size / 2**20
    timings["total"] = sum(timings.values()) - timings["dump_mib"]
    # apart, not in total: the dump as the project's backup makes it, search_index's rows left out (rebuilt)
    start = time.perf_counter()
    subprocess.run(
        [pg_dump, "-Fc", "--schema=floor_v2", "--exclude-table-data=floor_v2.search_index", f"--file={out}"], check=True
    )
    timings["pg_dump_lean"] = time.perf_counter() - start
    out.unlink()
    with lifeos_env.transaction() as cur:  # the same end state: as many rows as live v2 (its 11 tables, search_index)
        for schema, name in (("floor_v2", "rows_floor"), (live, "rows_live")):
            cur.execute(
                "select " + " + ".join(f"(select count(*) from {schema}.{t})" for t in [*MAPPED, "search_index"])
            )
            timings[name] = cur.fetchone()[0]
        cur.execute("drop schema floor_v1 cascade; drop schema floor_v2 cascade")
    return timings
