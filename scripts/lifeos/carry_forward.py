"""Carry the app's writes to live v2 into a new shadow before it is published (scripts/migrate --carry-forward).

A three-way merge from state, per row and per column: base = the v2 that v1 alone produced for the build that
published live v2 (schema v2_base_<build run id>, kept by every green build: macros/merge_base.sql), ours =
live v2 now, theirs = the new shadow (v1's new build). The app's changes are the rows where live v2 differs
from the base; v1's are already in the shadow. Whatever happened in between (publishes, carry-forwards,
rollbacks), the result is the same, and a second carry-forward with the same dump changes nothing.

Each column has one origin, named in the marts' YAML (`config.meta.origin`, read from the manifest): copy and
rename columns hold v1's values, derived ones the migration computes (sort_order, updated_at, ...), new ones
only v2 has. Per row the app wrote, in one transaction of set-based statements, tables in foreign-key order
(polymorphic tables last; deletes in the reverse order):
- a row the app created is inserted (a column only the new v2 has takes its default);
- a row the app updated takes the app's value in each column the app changed, v1's in the others (a
  derived column v1's build recomputed is no change of v1's; `updated_at` takes the later time);
- a row the app deleted is deleted, unless v1 changed a column it holds or a row of the new v2 refers to it
  (by foreign key or polymorphic reference);
- a row both created (it reached v1 by `export-changes --to-v1`) keeps the app's version when the columns v1
  holds agree.
Everything else is a conflict, left as v1 has it and recorded in <meta_schema>.conflicts with both versions
and the reason: a v1-held column both changed differently, a row the app changed that v1 deleted, a row whose
parent (or polymorphic entity) is not in the new v2, a unique clash, a cycle the merge would close, a new
NOT NULL column without a default, a delete of a row v1 changed or that rows of the new v2 refer to. So the
merged shadow passes every test by construction.

The writes the app makes after this merge (the change log names them: those not marked merged_into the
build) are merged by merge_late inside the publish's own lock, with the row as the log recorded it before its
first late change as the base.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass, field

import psycopg2
from psycopg2 import sql

import lifeos_env
from lifeos import catalog, merge_base, runs, short_tries
from lifeos.catalog import Cursor
from lifeos.conflicts import Conflict
from lifeos.project import V1_HELD, Project
from lifeos.settings import Settings

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


def merge(settings: Settings, build: runs.Run, project: Project, lock_wait: float = short_tries.LOCK_WAIT) -> Merged:
    """Merge the app's writes to live v2 into the shadow of `build`, in one transaction (each lock it takes is
    tried briefly, and the transaction tried again: short_tries.in_short_tries)."""
    with closing(lifeos_env.connect(options=short_tries.SESSION_OPTIONS)) as conn:
        conn.set_session(isolation_level="REPEATABLE READ")  # the log and live v2 as of one moment
        try:
            return short_tries.in_short_tries(
                conn,
                lambda cur: Pass(cur, settings, build, project).run(late=False),
                lock_wait,
                [build.schemas["live"]],
            )
        except psycopg2.Error as error:  # a defect of the merge's: nothing of it stays
            message = str(error).strip().splitlines()[0]
            raise lifeos_env.MigrationError(f"the merge into {build.schemas['shadow']} failed: {message}") from error


def merge_late(cur: Cursor, settings: Settings, build: runs.Run, project: Project) -> Merged:
    """In the publish's transaction, after it locked live v2 against writes: merge the app's writes the
    change log records after the merge (not yet marked merged_into the build)."""
    return Pass(cur, settings, build, project).run(late=True)


def pairs(template: str, columns: list[str], others: list[str] | None = None) -> sql.Composable:
    """`template` (with {0}, and {1} from `others`) for each column, joined with and."""
    return sql.SQL(" and ").join(
        sql.SQL(template).format(*map(sql.Identifier, names)) for names in zip(columns, others or columns, strict=True)
    )


class Pass:
    """One merge pass, on the cursor of its transaction."""

    def __init__(self, cur: Cursor, settings: Settings, build: runs.Run, project: Project) -> None:
        self.cur, self.settings, self.build, self.project = cur, settings, build.run_id, project
        self.live, self.shadow = build.schemas["live"], build.schemas["shadow"]
        self.merged = Merged()
        self.keys: list[ForeignKey] | None = None

    def execute(self, query: sql.Composable, params: object = None) -> int:
        self.cur.execute(query, params)
        lifeos_env.raise_if_stopped()
        return self.cur.rowcount

    def run(self, *, late: bool) -> Merged:
        base = merge_base.of_live(self.cur, self.settings, self.live)
        if base is None:
            return self.merged
        # the log's records this pass sees are merged into the build: a later pass merges only the others
        self.execute(
            sql.SQL(
                "create temp table carry_late on commit drop as"
                " select table_name, row_id, (array_agg(old_row order by change_id))[1] as old_row from {changes}"
                " where schema_oid = to_regnamespace(%(live)s) and merged_into is distinct from %(build)s"
                " group by table_name, row_id;"
                " update {changes} set merged_into = %(build)s"
                " where schema_oid = to_regnamespace(%(live)s) and merged_into is distinct from %(build)s;"
                # the records of schemas dropped since (a later build's shadow, a cleaned-up backup): no guard,
                # export or check can name them, and an oid the server gives again must find none
                " delete from {carried} where schema_oid not in (select oid from pg_namespace);"
                " delete from {changes} where schema_oid not in (select oid from pg_namespace)"
            ).format(changes=runs.meta(self.settings, "changes"), carried=runs.meta(self.settings, "carried")),
            {"live": self.live, "build": self.build},
        )
        names = set(catalog.tables(self.cur, self.live)) & set(catalog.tables(self.cur, self.shadow))
        names &= self.project.merged_tables()
        if late:
            self.cur.execute("select distinct table_name from carry_late")
            names &= {name for (name,) in self.cur.fetchall()}
        polymorphic = {reference.table for reference in self.project.polymorphic}
        ordered = sorted(
            catalog.in_foreign_key_order(self.cur, self.shadow, sorted(names)), key=lambda t: t in polymorphic
        )  # a polymorphic table after the tables its rows name (nothing refers to it)
        base_tables = set(catalog.tables(self.cur, base))
        for table in ordered:
            self.execute(sql.SQL("alter table {} disable trigger user").format(self.table(table)))
        for number, table in enumerate(ordered):
            self.classify(table, f"carry_{number}", base if table in base_tables else None, late)
        for number, table in enumerate(ordered):
            self.insert_and_update(table, f"carry_{number}")
        for number, table in reversed(list(enumerate(ordered))):
            self.delete(table, f"carry_{number}")
        for number, table in enumerate(ordered):
            self.execute(sql.SQL("alter table {} enable trigger user").format(self.table(table)))
            self.record(table, f"carry_{number}")
        if not late and (self.merged.carried or self.merged.conflicts):  # publishable once the tests pass again
            self.execute(
                sql.SQL("update {} set result = 'building', detail = %s where run_id = %s").format(
                    runs.meta(self.settings, "runs")
                ),
                (CARRYING, self.build),
            )
        if self.merged.carried and "search_index" in catalog.tables(self.cur, self.shadow):
            self.execute(sql.SQL("select {}.refresh_search_index()").format(sql.Identifier(self.shadow)))
        return self.merged

    def table(self, name: str, schema: str | None = None) -> sql.Composed:
        return catalog.qualified(schema or self.shadow, name)

    def classify(self, table: str, rows: str, base: str | None, late: bool) -> None:
        """The temp table `rows`: each row where live v2 differs from the base, with its three versions (o:
        live, t: the shadow, b: the base; created: not in the base), the merged row m, the v1-held columns
        both changed differently, and its action: insert, update, delete, conflict or none."""
        live_columns = set(catalog.column_names(self.cur, self.live, table))
        columns = [name for name in catalog.column_names(self.cur, self.shadow, table) if name in live_columns]
        if late or not base:  # the rows as the log recorded them before their first late change; or none
            based = sql.Identifier(f"{rows}_base")
            self.execute(
                sql.SQL(
                    "create temp table {based} on commit drop as select * from {shadow} where false;"
                    " insert into {based} select (jsonb_populate_record(null::{based}, old_row)).* from carry_late"
                    " where %s and table_name = %s and old_row is not null"
                ).format(based=based, shadow=self.table(table)),
                (late, table),
            )
            base_columns = set(columns)
        else:
            based = self.table(table, base)
            base_columns = set(catalog.column_names(self.cur, base, table))

        def value(alias: str, name: str) -> sql.Composable:
            if alias == "b" and name not in base_columns:
                return sql.SQL("null")
            return sql.SQL("({}).{}").format(sql.Identifier(alias), sql.Identifier(name))

        def differ(one: str, other: str, name: str) -> sql.Composable:
            return sql.SQL("{} is distinct from {}").format(value(one, name), value(other, name))

        def names(condition: object, of: list[str]) -> sql.Composable:
            """The array of the names of the columns `of` for which condition(name) holds."""
            cases = [sql.SQL("case when {} then {} end").format(condition(name), sql.Literal(name)) for name in of]
            return sql.SQL("array_remove(array[{}]::text[], null)").format(sql.SQL(", ").join(cases) or sql.SQL(""))

        held = [name for name in columns if name in self.project.columns(table, *V1_HELD) and name != UPDATED_AT]
        conflicting = names(
            lambda c: sql.SQL("({} and {} and {})").format(
                differ("o", "b", c), differ("t", "b", c), differ("o", "t", c)
            ),
            held,
        )
        both_created = names(lambda c: differ("o", "t", c), held)
        v1_changed = names(lambda c: differ("t", "b", c), held)
        merged = [
            sql.SQL("{}, case when created or {} then {} else (t).{} end").format(
                sql.Literal(name),
                differ("o", "b", name),
                sql.SQL("greatest((o).{0}, (t).{0})" if name == UPDATED_AT else "(o).{0}").format(sql.Identifier(name)),
                sql.Identifier(name),
            )
            for name in columns
        ]
        merged_object = sql.SQL(
            " || "
        ).join(  # jsonb_build_object takes at most 100 arguments
            sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(merged[start : start + 40]))
            for start in range(0, len(merged), 40)
        )
        app_wrote = sql.SQL("row({}) is distinct from row({})").format(
            sql.SQL(", ").join(value("o", name) for name in columns),
            sql.SQL(", ").join(value("b", name) for name in columns),
        )
        only = sql.SQL(
            " and coalesce(o.id, b.id)::text in (select row_id from carry_late where table_name = {})"
        ).format(sql.Literal(table))
        self.execute(
            sql.SQL(
                "create temp table {rows} on commit drop as"
                " select coalesce(o.id, b.id)::text as row_id, b.id is null as created, o, t, b,"
                " null::{shadow} as m, null::text as action, null::text as reason, '{{}}'::text[] as columns"
                " from {live} o full join {base} b on b.id = o.id left join {shadow} t on t.id = coalesce(o.id, b.id)"
                " where {app_wrote}{only};"
                " update {rows} set columns = case when created then {both_created} else {conflicting} end"
                " where (o).id is not null and (t).id is not null;"
                " update {rows} set action = case"
                "  when (o).id is not null and (t).id is null then case when created then 'insert' else 'conflict' end"
                "  when (o).id is not null and cardinality(columns) > 0 then 'conflict'"
                "  when (o).id is not null then 'update'"
                "  when (t).id is not null and cardinality({v1_changed}) > 0 then 'conflict'"
                "  when (t).id is not null then 'delete'"
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
                " update {rows} set action = 'none' where action = 'update' and to_jsonb(m) = to_jsonb(t);"
                " update {rows} set m = jsonb_populate_record(null::{shadow}, to_jsonb(o)) where action = 'insert'"
            ).format(
                rows=sql.Identifier(rows),
                shadow=self.table(table),
                live=self.table(table, self.live),
                base=based,
                app_wrote=app_wrote,
                only=only if late else sql.SQL(""),
                both_created=both_created,
                conflicting=conflicting,
                v1_changed=v1_changed,
                merged=merged_object,
            )
        )

    def insert_and_update(self, table: str, rows: str) -> None:
        """Refuse (as conflicts) the merged rows the new v2 could not hold, until none is left to refuse; then
        insert and update the rest (an insert writes the columns live v2 has: the others take their default)."""
        live_columns = set(catalog.column_names(self.cur, self.live, table))
        written = [name for name in catalog.column_names(self.cur, self.shadow, table) if name in live_columns]
        self.without_default(table, rows, live_columns)
        foreign_keys = [key for key in self.foreign_keys() if key.child == table]
        uniques = self.unique_keys(table)
        while (
            self.orphans(table, rows, foreign_keys)
            + self.dangling(table, rows)
            + self.clashes(table, rows, uniques)
            + self.cycles(table, rows)
        ):
            pass
        columns = sql.SQL(", ").join(map(sql.Identifier, written))
        values = sql.SQL(", ").join(sql.SQL("(m).{}").format(sql.Identifier(name)) for name in written)
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

    def without_default(self, table: str, rows: str, live_columns: set[str]) -> None:
        """Refuse the inserts when the new v2 has a NOT NULL column without a default that live v2 lacks."""
        self.cur.execute(
            "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped"
            " and attnotnull and not atthasdef and attidentity = '' and attgenerated = '' order by attnum",
            (self.table(table).as_string(self.cur),),
        )
        missing = [name for (name,) in self.cur.fetchall() if name not in live_columns]
        if missing:
            reason = f"the new v2's {', '.join(missing)} is NOT NULL without a default, and live v2 has no value"
            self.refuse(rows, ["insert"], sql.Literal(reason), sql.SQL("true"))

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

    def dangling(self, table: str, rows: str) -> int:
        """Mark inserts and updates whose polymorphic reference names a row the new v2 does not have."""
        refused = 0
        for reference in self.project.polymorphic:
            if reference.table != table or table in self.project.history:
                continue
            kind, entity = sql.Identifier(reference.type_column), sql.Identifier(reference.id_column)
            resolves = sql.SQL(" ").join(
                sql.SQL("when {} then exists (select from {} e where e.id = (r.m).{})").format(
                    sql.Literal(name), self.table(target), entity
                )
                for name, target in sorted(reference.targets.items())
            )
            condition = sql.SQL("(r.m).{} is not null and not (case (r.m).{} {} else true end)").format(
                entity, kind, resolves
            )
            reason = sql.Literal(f"the row its {reference.id_column} names is not in the new v2 (v1 deleted it)")
            refused += self.refuse(rows, ["insert", "update"], reason, condition)
        return refused

    def clashes(self, table: str, rows: str, uniques: list[UniqueKey]) -> int:
        """Mark inserts and updates whose key of a unique index another row of the merged shadow would hold (the
        shadow's rows as they would be: the merged ones in place of theirs)."""
        refused = 0
        for unique in uniques:
            key = sql.SQL("row({})").format(sql.SQL(", ").join(map(sql.SQL, unique.expressions)))
            condition = sql.SQL(
                "(r.m).id in (with merged as ("
                "  select * from {table} s where s.id::text not in"
                "   (select row_id from {rows} where action in ('insert', 'update'))"
                "  union all select (p.m).* from {rows} p where p.action in ('insert', 'update')),"
                " keyed as (select id, {key} as key from merged where ({predicate}) and {key} is not null)"
                " select id from keyed where key in (select key from keyed group by key having count(*) > 1))"
            ).format(key=key, table=self.table(table), predicate=sql.SQL(unique.predicate), rows=sql.Identifier(rows))
            refused += self.refuse(rows, ["insert", "update"], sql.Literal(f"unique clash on {unique.name}"), condition)
        return refused

    def cycles(self, table: str, rows: str) -> int:
        """Mark inserts and updates that would close a cycle of an acyclic hierarchy (its test `acyclic`) in the
        merged shadow."""
        refused = 0
        for child, parent in self.project.acyclic.get(table, []):
            condition = sql.SQL(
                "(r.m).{parent} is not null and exists (with recursive edges as ("
                "  select {child} as child, {parent} as parent from {table} s where s.id::text not in"
                "   (select row_id from {rows} where action in ('insert', 'update'))"
                "  union all select (p.m).{child}, (p.m).{parent} from {rows} p"
                "   where p.action in ('insert', 'update')),"
                " walk(node) as (select (r.m).{parent} union"
                "  select e.parent from walk join edges e on e.child = walk.node where e.parent is not null)"
                " select from walk where node = (r.m).{child})"
            ).format(
                child=sql.Identifier(child), parent=sql.Identifier(parent), table=self.table(table),
                rows=sql.Identifier(rows),
            )  # fmt: skip
            reason = sql.Literal(f"it would close a cycle of {parent} with v1's rows")
            refused += self.refuse(rows, ["insert", "update"], reason, condition)
        return refused

    def delete(self, table: str, rows: str) -> None:
        """Refuse the deletes of rows other rows of the shadow still refer to, by foreign key or polymorphic
        reference (each time a refusal can keep a row of the same table referred to), then delete the rest."""
        referring = [
            (sql.SQL("{} c where {}").format(self.table(key.child), pairs("c.{} = (r.t).{}", key.columns,
                                                                          key.parent_columns)), key.child)
            for key in self.foreign_keys() if key.parent == table
        ] + [
            (sql.SQL("{} c where c.{} = {} and c.{} = (r.t).id").format(
                self.table(reference.table), sql.Identifier(reference.type_column), sql.Literal(kind),
                sql.Identifier(reference.id_column)), reference.table)
            for reference in self.project.polymorphic
            if reference.table in self.project.merged_tables() and reference.table not in self.project.history
            for kind, target in reference.targets.items() if target == table
        ]  # fmt: skip
        refused = True
        while refused:
            refused = False
            for children, child in referring:
                condition = sql.SQL("exists (select from {}").format(children)
                if child == table:
                    condition += sql.SQL(
                        " and c.id::text not in (select row_id from {} where action = 'delete')"
                    ).format(sql.Identifier(rows))
                reason = sql.Literal(f"rows of {child} in the new v2 refer to the row the app deleted")
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
                " case when (b).id is not null then to_jsonb(b) end from {rows} where action = 'conflict'"
                " returning table_name, row_id, reason, app_version, v1_version"
            ).format(conflicts=runs.meta(self.settings, "conflicts"), rows=sql.Identifier(rows)),
            {"build": self.build, "table": table},
        )
        self.merged.conflicts += [Conflict(*row) for row in self.cur.fetchall()]
        self.execute(
            sql.SQL(
                "insert into {carried} (build_run_id, schema_oid, table_name, row_id, action)"
                " select %(build)s, to_regnamespace(%(shadow)s), %(table)s, row_id, rtrim(action, 'e') || 'ed'"
                " from {rows} where action in ('insert', 'update', 'delete')"
            ).format(carried=runs.meta(self.settings, "carried"), rows=sql.Identifier(rows)),
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
        if self.keys is None:
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
            self.keys = [
                ForeignKey(child, cols, parent, parents) for child, parent, cols, parents in self.cur.fetchall()
            ]
        return self.keys

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
