"""Carry the app's writes to live v2 into a new shadow before it is published (scripts/migrate --carry-forward).

A three-way merge per row of the rows the change capture (lifeos/guard.py capture_changes) recorded:
base = the row as published (the old row of its first change, from the log), ours = live v2 now (the app's),
theirs = the new shadow (v1's). Carried over, in one transaction of set-based statements, tables in
foreign-key order (deletes in the reverse order):
- a row the app created, when its parents are in the new shadow;
- a row the app updated: each column it changed that v1 did not takes the app's value (a column both changed
  to the same value is no conflict; `updated_at`, changed by both, takes the later time);
- a row the app deleted that v1 did not change, when no row of the new shadow refers to it;
- a row the app created that v1 holds too (it came to v1 from the app, by `scripts/publish export-changes
  --to-v1`): the app's version, when it equals v1's in every column v1 holds (the Copy and Rename columns).
Anything else is a conflict, left as v1 has it and recorded in <meta_schema>.conflicts with both versions and
the reason: a column both sides changed differently (or, of a row both created, differ in), a row the app
changed that v1 deleted, a new row whose parent is not in the new shadow, a unique clash, a row the app
deleted that v1 changed or that new rows refer to. Each change merged is marked merged_into the build in the
log, so a second pass (writes that arrived in between) merges only those, and publish accepts exactly the
merged ones. The app's triggers of the shadow stay off during the merge (the app's own writes already did
what they do, and were recorded); search_index is rebuilt after it.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass, field

from psycopg2 import sql

import lifeos_env
from lifeos import catalog, manifest, runs, short_tries
from lifeos.catalog import Cursor
from lifeos.conflicts import Conflict

UPDATED_AT = "updated_at"  # a bookkeeping column both sides set on every change: the later time wins
CARRYING = "the app's writes to live v2 are merged in; the tests run again"  # the build's ledger detail meanwhile


@dataclass
class Merged:
    """What one merge pass carried (table -> action -> rows) and the conflicts it recorded."""

    carried: dict[str, dict[str, int]] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)


@dataclass
class ForeignKey:
    child: str
    columns: list[str]
    parent: str
    parent_columns: list[str]


@dataclass
class UniqueKey:
    """A unique index: its key expressions and predicate, over the table's bare column names."""

    name: str
    expressions: list[str]
    predicate: str


def merge(build: runs.Run) -> Merged:
    """Merge the app's writes to live v2 not yet merged into the shadow of `build` into it, in one transaction."""
    with closing(lifeos_env.connect(options=short_tries.SESSION_OPTIONS)) as conn:
        with conn, conn.cursor() as cur:  # a short transaction of its own: it locks the log for a moment
            lifeos_env.create_meta_tables(cur, "changes")
        conn.set_session(isolation_level="REPEATABLE READ")  # the log and live v2 as of one moment
        with conn, conn.cursor() as cur:
            return Pass(cur, build).run()


def v1_held_columns() -> dict[str, set[str]]:
    """Per v2 table, the columns whose values come from v1 (the Copy and Rename columns its checks compare with
    v1: copied_columns_match, content_hash_matches), as the last dbt run's manifest lists them."""
    held: dict[str, set[str]] = {}
    for node in manifest.read()["nodes"].values():
        check = node.get("test_metadata") or {}
        if node["resource_type"] == "test" and check.get("name") in ("copied_columns_match", "content_hash_matches"):
            held.setdefault(node["attached_node"].split(".")[-1], set()).update(check["kwargs"]["columns"])
    return held


def pairs(template: str, columns: list[str], others: list[str] | None = None) -> sql.Composable:
    """`template` (with {0}, and {1} from `others`) for each column, joined with and."""
    return sql.SQL(" and ").join(
        sql.SQL(template).format(*map(sql.Identifier, names)) for names in zip(columns, others or columns, strict=True)
    )


class Pass:
    """One merge pass, on the cursor of its transaction."""

    def __init__(self, cur: Cursor, build: runs.Run) -> None:
        self.cur, self.build = cur, build.run_id
        self.live, self.shadow = build.schemas["live"], build.schemas["shadow"]
        self.merged = Merged()
        self.v1_columns: dict[str, set[str]] | None = None

    def execute(self, query: sql.Composable, params: object = None) -> int:
        self.cur.execute(query, params)
        return self.cur.rowcount

    def run(self) -> Merged:
        self.collect()
        self.cur.execute("select distinct table_name from carry_net")
        written = {name for (name,) in self.cur.fetchall()}
        names = sorted(written & set(catalog.tables(self.cur, self.live)) & set(catalog.tables(self.cur, self.shadow)))
        ordered = catalog.in_foreign_key_order(self.cur, self.shadow, names)
        if ordered:  # not publishable until the tests pass on the merged shadow (a killed run stays unpublishable)
            self.execute(
                sql.SQL("update {} set result = 'building', detail = %s where run_id = %s").format(runs.meta("runs")),
                (CARRYING, self.build),
            )
        for table in ordered:
            self.execute(sql.SQL("alter table {} disable trigger user").format(self.table(table)))
        for number, table in enumerate(ordered):
            self.classify(table, f"carry_{number}")
            self.insert_and_update(table, f"carry_{number}")
        for number, table in reversed(list(enumerate(ordered))):
            self.delete(table, f"carry_{number}")
        for number, table in enumerate(ordered):
            self.execute(sql.SQL("alter table {} enable trigger user").format(self.table(table)))
            self.record(table, f"carry_{number}")
        if ordered and "search_index" in catalog.tables(self.cur, self.shadow):
            self.execute(sql.SQL("select {}.refresh_search_index()").format(sql.Identifier(self.shadow)))
        return self.merged

    def table(self, name: str, schema: str | None = None) -> sql.Composed:
        return catalog.qualified(schema or self.shadow, name)

    def collect(self) -> None:
        """carry_net: each row the app wrote that is not merged into this shadow yet, with its first operation
        and its base (the old row of its first change); the log's records of them are marked merged into the
        build."""
        self.execute(
            sql.SQL(
                "create temp table carry_changes on commit drop as"
                " select change_id, table_name, row_id, operation, old_row from {changes}"
                " where schema_oid = to_regnamespace(%(live)s) and merged_into is distinct from %(build)s"
                " and table_name <> all(%(derived)s);"
                " update {changes} set merged_into = %(build)s"
                " where change_id in (select change_id from carry_changes);"
                " create temp table carry_net on commit drop as"
                " select table_name, row_id, first_op, base from ("
                "  select table_name, row_id, (array_agg(operation order by change_id))[1] as first_op,"
                "   (array_agg(operation order by change_id desc))[1] as last_op,"
                "   (array_agg(old_row order by change_id))[1] as base"
                "  from carry_changes group by table_name, row_id) as written"
                " where not (first_op = 'INSERT' and last_op = 'DELETE');"
                # the records of shadows dropped since (a later build's): an oid the server gives again finds none
                " delete from {carried} where schema_oid not in (select oid from pg_namespace)"
            ).format(changes=runs.meta("changes"), carried=runs.meta("carried")),
            {"live": self.live, "build": self.build, "derived": list(catalog.DERIVED)},
        )

    def migrated(self, table: str) -> set[str]:
        if self.v1_columns is None:
            self.v1_columns = v1_held_columns()
        return self.v1_columns.get(table, set())

    def columns(self, table: str) -> list[str]:
        """The columns live v2 and the shadow both have (a column only the new shadow has keeps v1's value)."""
        ours = set(catalog.column_names(self.cur, self.live, table))
        return [name for name in catalog.column_names(self.cur, self.shadow, table) if name in ours]

    def classify(self, table: str, rows: str) -> None:
        """The temp table `rows`: each row the app wrote in `table`, with its three versions (o: live, t: the
        shadow, b: as published; created: the app created it), the merged row m, the columns both changed
        differently, and its action: insert, update, delete, conflict or none."""
        columns = [name for name in self.columns(table) if name != "id"]

        def differ(one: str, other: str, name: str) -> sql.Composable:
            return sql.SQL("({0}).{2} is distinct from ({1}).{2}").format(
                sql.Identifier(one), sql.Identifier(other), sql.Identifier(name)
            )

        def names(condition: object, of: list[str]) -> sql.Composable:
            """The array of the names of the columns `of` for which condition(name) holds."""
            cases = [sql.SQL("case when {} then {} end").format(condition(name), sql.Literal(name)) for name in of]
            return sql.SQL("array_remove(array[{}]::text[], null)").format(sql.SQL(", ").join(cases) or sql.SQL(""))

        compared = [name for name in columns if name != UPDATED_AT]
        conflicting = names(
            lambda c: sql.SQL("({} and {} and {})").format(
                differ("o", "b", c), differ("t", "b", c), differ("o", "t", c)
            ),
            compared,
        )
        # a row both created came to v1 from the app (export-changes --to-v1): only the columns v1 holds compare
        both_created = names(lambda c: differ("o", "t", c), [name for name in compared if name in self.migrated(table)])
        app_changed = names(
            lambda c: sql.SQL("((created or {}) and {})").format(differ("o", "b", c), differ("o", "t", c)), columns
        )
        v1_changed = names(lambda c: differ("t", "b", c), columns)
        merged = [
            sql.SQL("{}, case when created or {} then {} else (t).{} end").format(
                sql.Literal(name),
                differ("o", "b", name),
                sql.SQL("greatest((o).{0}, (t).{0})" if name == UPDATED_AT else "(o).{0}").format(sql.Identifier(name)),
                sql.Identifier(name),
            )
            for name in columns
        ]
        merged_object = (
            sql.SQL(" || ").join(  # jsonb_build_object takes at most 100 arguments
                sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(merged[start : start + 40]))
                for start in range(0, len(merged), 40)
            )
            or sql.SQL("'{}'::jsonb")
        )
        self.execute(
            sql.SQL(
                "create temp table {rows} on commit drop as"
                " select n.row_id, n.first_op = 'INSERT' as created, n.base, o, t,"
                " jsonb_populate_record(null::{shadow}, n.base) as b, null::{shadow} as m, null::text as action,"
                " null::text as reason, '{{}}'::text[] as columns"
                " from carry_net n left join {live} o on o.id::text = n.row_id"
                " left join {shadow} t on t.id::text = n.row_id where n.table_name = {name};"
                " update {rows} set columns = case when created then {both_created} else {conflicting} end"
                " where (o).id is not null and (t).id is not null;"
                " update {rows} set action = case"
                "  when (o).id is not null and (t).id is null then case when created then 'insert' else 'conflict' end"
                "  when (o).id is not null and cardinality(columns) > 0 then 'conflict'"
                "  when (o).id is not null and cardinality({app_changed}) > 0 then 'update'"
                "  when (o).id is null and (t).id is not null and cardinality({v1_changed}) > 0 then 'conflict'"
                "  when (o).id is null and (t).id is not null then 'delete'"
                "  else 'none' end,"
                " reason = case"
                "  when (o).id is not null and (t).id is null then 'v1 deleted the row the app changed'"
                "  when (o).id is not null and created then 'created on both sides, with different '"
                "   || array_to_string(columns, ', ')"
                "  when (o).id is not null"
                "   then 'both sides changed ' || array_to_string(columns, ', ') || ' differently'"
                "  else 'the app deleted the row v1 changed (' || array_to_string({v1_changed}, ', ') || ')' end;"
                " update {rows} set reason = null where action <> 'conflict';"
                " update {rows} set m = jsonb_populate_record(t, {merged}) where action = 'update';"
                " update {rows} set m = jsonb_populate_record(null::{shadow}, to_jsonb(o)) where action = 'insert'"
            ).format(
                rows=sql.Identifier(rows),
                shadow=self.table(table),
                live=self.table(table, self.live),
                name=sql.Literal(table),
                both_created=both_created,
                conflicting=conflicting,
                app_changed=app_changed,
                v1_changed=v1_changed,
                merged=merged_object,
            )
        )

    def insert_and_update(self, table: str, rows: str) -> None:
        """Refuse (as conflicts) merged rows whose parents are not in the shadow or that clash with a unique
        key, until none is left to refuse; then insert and update the rest."""
        foreign_keys = [key for key in self.foreign_keys() if key.child == table]
        uniques = self.unique_keys(table)
        while self.orphans(table, rows, foreign_keys) + self.clashes(table, rows, uniques):
            pass
        columns = sql.SQL(", ").join(map(sql.Identifier, catalog.column_names(self.cur, self.shadow, table)))
        values = sql.SQL(", ").join(
            sql.SQL("(m).{}").format(sql.Identifier(name))
            for name in catalog.column_names(self.cur, self.shadow, table)
        )
        self.execute(
            sql.SQL(
                "insert into {table} ({columns}) select {values} from {rows} where action = 'insert';"
                " update {table} as target set ({columns}) = (select {values})"
                " from {rows} where {rows}.action = 'update' and target.id = ({rows}.m).id"
            ).format(table=self.table(table), columns=columns, values=values, rows=sql.Identifier(rows))
        )

    def refuse(self, rows: str, actions: list[str], reason: sql.Composable, condition: sql.Composable) -> int:
        """Make the rows of temp table `rows` with one of `actions` for which `condition` (on alias r) holds
        conflicts, for `reason`; return how many."""
        return self.execute(
            sql.SQL("update {} r set action = 'conflict', reason = {} where r.action = any({}) and {}").format(
                sql.Identifier(rows), reason, sql.Literal(actions), condition
            )
        )

    def orphans(self, table: str, rows: str, foreign_keys: list[ForeignKey]) -> int:
        """Mark inserts and updates whose parent row is in neither the shadow nor (same table) among the inserts."""
        refused = 0
        for key in foreign_keys:
            condition = sql.SQL("{} and not exists (select from {} p where {})").format(
                pairs("(r.m).{} is not null", key.columns),
                self.table(key.parent),
                pairs("p.{1} = (r.m).{0}", key.columns, key.parent_columns),
            )
            if key.parent == table:
                condition += sql.SQL(" and not exists (select from {} p where p.action = 'insert' and {})").format(
                    sql.Identifier(rows), pairs("(p.m).{1} = (r.m).{0}", key.columns, key.parent_columns)
                )
            reason = sql.SQL("{} || ' is not in the new v2 (v1 deleted it, or it is a conflict)'").format(
                sql.Literal(f"its parent in {key.parent}")
            )
            refused += self.refuse(rows, ["insert", "update"], reason, condition)
        return refused

    def clashes(self, table: str, rows: str, uniques: list[UniqueKey]) -> int:
        """Mark inserts and updates whose key of a unique index another row of the shadow holds."""
        refused = 0
        for unique in uniques:
            key = sql.SQL("row({})").format(sql.SQL(", ").join(map(sql.SQL, unique.expressions)))
            condition = sql.SQL(
                "exists (select from (select id, {key} as key from {table} where {predicate}) as other"
                " where other.id <> (r.m).id"
                " and other.id::text not in (select row_id from {rows} where action = 'update')"
                " and other.key = (select {key} from (select (r.m).*) as merged where {predicate}))"
            ).format(key=key, table=self.table(table), predicate=sql.SQL(unique.predicate), rows=sql.Identifier(rows))
            refused += self.refuse(rows, ["insert", "update"], sql.Literal(f"unique clash on {unique.name}"), condition)
        return refused

    def delete(self, table: str, rows: str) -> None:
        """Refuse the deletes of rows other rows of the shadow still refer to (each time a refusal can keep a
        row of the same table referred to), then delete the rest."""
        referring = [key for key in self.foreign_keys() if key.parent == table]
        refused = True
        while refused:
            refused = False
            for key in referring:
                condition = sql.SQL("exists (select from {} c where {}").format(
                    self.table(key.child), pairs("c.{} = (r.t).{}", key.columns, key.parent_columns)
                )
                if key.child == table:
                    condition += sql.SQL(
                        " and c.id::text not in (select row_id from {} where action = 'delete')"
                    ).format(sql.Identifier(rows))
                reason = sql.Literal(f"rows of {key.child} in the new v2 refer to the row the app deleted")
                refused |= self.refuse(rows, ["delete"], reason, condition + sql.SQL(")")) > 0
        self.execute(
            sql.SQL("delete from {} where id::text in (select row_id from {} where action = 'delete')").format(
                self.table(table), sql.Identifier(rows)
            )
        )

    def record(self, table: str, rows: str) -> None:
        """The conflicts of `table` into <meta>.conflicts, the rows carried into <meta>.carried."""
        self.execute(
            sql.SQL(
                "insert into {conflicts} (build_run_id, table_name, row_id, reason, columns, app_version,"
                " v1_version, published_version)"
                " select %(build)s, %(table)s, row_id, reason, nullif(columns, '{{}}'),"
                " case when (o).id is not null then to_jsonb(o) end, case when (t).id is not null then to_jsonb(t) end,"
                " base from {rows} where action = 'conflict'"
                " returning table_name, row_id, reason, app_version, v1_version"
            ).format(conflicts=runs.meta("conflicts"), rows=sql.Identifier(rows)),
            {"build": self.build, "table": table},
        )
        self.merged.conflicts += [Conflict(*row) for row in self.cur.fetchall()]
        self.execute(
            sql.SQL(
                "insert into {carried} (build_run_id, schema_oid, table_name, row_id, action)"
                " select %(build)s, to_regnamespace(%(shadow)s), %(table)s, row_id, rtrim(action, 'e') || 'ed'"
                " from {rows} where action in ('insert', 'update', 'delete')"
            ).format(carried=runs.meta("carried"), rows=sql.Identifier(rows)),
            {"build": self.build, "shadow": self.shadow, "table": table},
        )
        self.cur.execute(
            sql.SQL("select action, count(*) from {} where action in ('insert', 'update', 'delete') group by 1").format(
                sql.Identifier(rows)
            )
        )
        counts = {action.removesuffix("e") + "ed": rows for action, rows in self.cur.fetchall()}
        if counts:
            self.merged.carried[table] = counts

    def foreign_keys(self) -> list[ForeignKey]:
        """The foreign keys among the shadow's tables."""
        self.cur.execute(
            "select c.relname, r.relname,"
            " array(select attname from unnest(k.conkey) with ordinality as u(n, i)"
            "  join pg_attribute on attrelid = k.conrelid and attnum = u.n order by u.i),"
            " array(select attname from unnest(k.confkey) with ordinality as u(n, i)"
            "  join pg_attribute on attrelid = k.confrelid and attnum = u.n order by u.i)"
            " from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_class r on r.oid = k.confrelid"
            " where k.contype = 'f' and c.relnamespace = to_regnamespace(%s) order by k.conname",
            (self.shadow,),
        )
        return [ForeignKey(child, columns, parent, parents) for child, parent, columns, parents in self.cur.fetchall()]

    def unique_keys(self, table: str) -> list[UniqueKey]:
        """The unique indexes of the shadow's `table` but its primary key."""
        self.cur.execute(
            "select x.relname, array(select pg_get_indexdef(i.indexrelid, k, true)"
            "  from generate_series(1, i.indnkeyatts) as k order by k),"
            " coalesce(pg_get_expr(i.indpred, i.indrelid, true), 'true')"
            " from pg_index i join pg_class x on x.oid = i.indexrelid"
            " where i.indrelid = %s::regclass and i.indisunique and not i.indisprimary order by 1",
            (self.table(table).as_string(self.cur),),
        )
        return [UniqueKey(*row) for row in self.cur.fetchall()]
