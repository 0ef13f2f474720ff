"""The mapping of all 11 v1 tables on a real database: the contract in the catalog, and broken v1 input.

The sample tests read the migrated sample. The broken-input tests restore the
sample, drop every v1 constraint as a careless dump would, insert rows that
break v2's rules, add a column the plan does not know, and run `dbt build` once
for the whole module.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from collections.abc import Iterator
from urllib.parse import quote

import psycopg2
import psycopg2.extensions
import pytest
from conftest import TEMPLATE_STORAGE, build, drop_database, new_database
from psycopg2 import sql

import generate_sample
import lifeos_env
import migrate

Cursor = psycopg2.extensions.cursor
V1_TO_V2 = {
    "domains": "domains",
    "areas": "areas",
    "projects": "projects",
    "tasks": "tasks",
    "notes": "notes",
    "links": "bookmarks",
    "files": "files",
    "daily_focus": "daily_focus",
    "capture": "capture",
    "context_types": "context_types",
    "reminders": "reminders",
}


# ---- the migrated sample -------------------------------------------------------------------------


def test_every_v1_row_keeps_its_uuid_in_v2(sample_db: Cursor) -> None:
    for v1_table, v2_table in V1_TO_V2.items():
        sample_db.execute(
            sql.SQL(
                "select count(*) from v1.{} v1 full join public.{} v2 using (id) where v1.id is null or v2.id is null"
            ).format(sql.Identifier(v1_table), sql.Identifier(v2_table))
        )
        assert sample_db.fetchone() == (0,), v2_table


def test_file_paths_are_the_bucket_keys_of_every_shape(sample_db: Cursor) -> None:
    generator = generate_sample.Generator(scale=1)
    generator.tables()
    sample_db.execute("select storage_path from public.files")
    root = TEMPLATE_STORAGE["LIFEOS_STORAGE_ROOT"]  # what dbt's var storage_root read during the migration
    assert sorted(path for (path,) in sample_db.fetchall()) == sorted(f"{root}/{key}" for key in generator.blobs)
    sample_db.execute("select count(distinct substring(storage_path from '/object/([a-z]+)/')) from v1.files")
    assert sample_db.fetchone() == (3,)  # the sample holds public, authenticated and signed URLs


def test_sort_order_scopes(sample_db: Cursor) -> None:
    scopes = {
        "projects": "domain_id, area_id",
        "tasks": "coalesce(project_id, domain_id), parent_id",
        "daily_focus": "focus_date",
    }
    for table, scope in scopes.items():
        sample_db.execute(
            sql.SQL("select array_agg(sort_order order by sort_order) from public.{} group by {}").format(
                sql.Identifier(table), sql.SQL(scope)
            )
        )
        for (orders,) in sample_db.fetchall():
            assert orders == list(range(10, 10 * len(orders) + 1, 10)), table
    sample_db.execute(
        "select bool_and(t.sort_order = 10 * r) from public.tasks t join ("
        " select id, row_number() over (partition by project_id, case when project_id is null then domain_id end,"
        " parent_id order by created_at, id) as r from v1.tasks) v using (id)"
    )
    assert sample_db.fetchone() == (True,)
    sample_db.execute("select array_agg(value order by sort_order) from public.context_types")
    assert sample_db.fetchone() == (["admin", "calls", "deep_work", "errands", "quick", "creative"],)


def test_derived_and_defaulted_columns(sample_db: Cursor) -> None:
    checks = {
        "projects": "p.target_date is not distinct from v.due_date and p.priority = 3 and p.release_id is null"
        " and p.status = v.status and p.start_date is null",
        "tasks": "p.tags is not distinct from v.tags and p.assigned_to is null and p.template_id is null"
        " and p.energy_level is null and p.estimated_minutes is null and p.actual_minutes is null",
        "capture": "p.source = 'web' and p.updated_at = v.created_at and p.domain_id is null",
        "notes": "p.body is not distinct from v.body and not p.is_pinned and p.sort_order = 0",
        "daily_focus": "p.domain_id is not distinct from (select domain_id from v1.tasks t where t.id = v.task_id)",
    }
    for table, check in checks.items():
        sample_db.execute(
            sql.SQL("select bool_and({}) from public.{} p join v1.{} v using (id)").format(
                sql.SQL(check), sql.Identifier(table), sql.Identifier(table)
            )
        )
        assert sample_db.fetchone() == (True,), table


def foreign_key(column: str, parent: str, on_delete: str) -> str:
    return f"FOREIGN KEY ({column}) REFERENCES {parent}(id) ON DELETE {on_delete}"


def test_contract_is_in_the_catalog(sample_db: Cursor) -> None:
    sample_db.execute(
        """
        select conrelid::regclass::text, conname, pg_get_constraintdef(oid) from pg_constraint
        where connamespace = 'public'::regnamespace and contype in ('p', 'f', 'u')
        """
    )
    catalog = {(table.removeprefix("public."), name): d for table, name, d in sample_db.fetchall()}
    expected = {
        ("tasks", "tasks_parent_id_fkey"): foreign_key("parent_id", "tasks", "CASCADE"),
        ("tasks", "tasks_domain_id_fkey"): foreign_key("domain_id", "domains", "CASCADE"),
        ("tasks", "tasks_project_id_fkey"): foreign_key("project_id", "projects", "SET NULL"),
        ("projects", "projects_area_id_fkey"): foreign_key("area_id", "areas", "SET NULL"),
        ("daily_focus", "daily_focus_task_id_fkey"): foreign_key("task_id", "tasks", "SET NULL"),
        ("daily_focus", "daily_focus_domain_id_fkey"): foreign_key("domain_id", "domains", "SET NULL"),
        ("files", "files_capture_id_fkey"): foreign_key("capture_id", "capture", "SET NULL"),
        ("notes", "notes_task_id_fkey"): foreign_key("task_id", "tasks", "SET NULL"),
        ("bookmarks", "bookmarks_project_id_fkey"): foreign_key("project_id", "projects", "SET NULL"),
    }
    assert {key: catalog.get(key) for key in expected} == expected
    # a value is unique among active types only (issue 17): a soft-deleted one can be re-created
    sample_db.execute("select pg_get_indexdef('public.context_types_value_key'::regclass)")
    assert sample_db.fetchone()[0].endswith(
        "UNIQUE INDEX context_types_value_key ON public.context_types USING btree (value) WHERE is_active"
    )
    for table in V1_TO_V2.values():
        assert catalog.get((table, f"{table}_pkey")) == "PRIMARY KEY (id)"
    sample_db.execute(
        """
        select c.conrelid::regclass::text, a.attname from pg_constraint c
        join pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
        where c.connamespace = 'public'::regnamespace and c.contype = 'f'
          and not exists (select from pg_index i where i.indrelid = c.conrelid and i.indkey[0] = c.conkey[1])
        """
    )
    assert sample_db.fetchall() == []  # every FK column is indexed


@pytest.mark.parametrize(
    ("statement", "violated"),
    [
        ("update public.tasks set status = 'someday'", "tasks_status_check"),
        ("update public.tasks set priority = 5", "tasks_priority_check"),
        ("update public.tasks set energy_level = 'extreme'", "tasks_energy_level_check"),
        ("update public.projects set status = 'someday'", "projects_status_check"),
        ("update public.projects set priority = 0", "projects_priority_check"),
        ("update public.capture set source = 'email'", "capture_source_check"),
        ("update public.notes set content_format = 'rtf'", "notes_content_format_check"),
        ("update public.context_types set value = 'same'", "context_types_value_key"),
        ("update public.tasks set domain_id = gen_random_uuid()", "tasks_domain_id_fkey"),
        ("update public.tasks set title = null", None),
    ],
)
def test_v2_refuses_what_its_rules_forbid(sample_db: Cursor, statement: str, violated: str | None) -> None:
    with pytest.raises(psycopg2.IntegrityError) as raised:
        sample_db.execute(statement)
    assert raised.value.diag.constraint_name == violated


def test_app_inserts_get_the_plans_defaults(sample_db: Cursor) -> None:
    sample_db.execute(
        "insert into public.tasks (domain_id, title) select id, 'new' from public.domains limit 1"
        " returning priority, status, tags, is_custom_context, is_active, sort_order"
    )
    assert sample_db.fetchone() == (3, "open", [], False, True, 0)
    sample_db.execute(
        "insert into public.projects (domain_id, name) select id, 'new' from public.domains limit 1"
        " returning status, priority"
    )
    assert sample_db.fetchone() == ("active", 3)
    sample_db.execute("insert into public.capture (raw_text) values ('x') returning source, processed")
    assert sample_db.fetchone() == ("web", False)
    sample_db.execute("insert into public.notes (title) values ('x') returning content_format, is_pinned")
    assert sample_db.fetchone() == ("markdown", False)


def test_deletes_follow_the_documented_on_delete_rules(sample_db: Cursor) -> None:
    sample_db.execute(
        "select parent.id, parent.domain_id from public.tasks parent"
        " where exists (select from public.tasks child where child.parent_id = parent.id) limit 1"
    )
    parent, domain = sample_db.fetchone()
    sample_db.execute("insert into public.daily_focus (focus_date, task_id) values (current_date, %s)", (parent,))
    sample_db.execute("delete from public.tasks where id = %s", (parent,))
    sample_db.execute("select count(*) from public.tasks where parent_id = %s", (parent,))
    assert sample_db.fetchone() == (0,)  # subtasks go with their parent
    sample_db.execute("select count(*) from public.daily_focus where focus_date = current_date and task_id is null")
    assert sample_db.fetchone() == (1,)  # the focus record stays
    sample_db.execute("delete from public.domains where id = %s", (domain,))
    sample_db.execute(
        "select (select count(*) from public.tasks where domain_id = %(d)s)"
        " + (select count(*) from public.areas where domain_id = %(d)s)",
        {"d": domain},
    )
    assert sample_db.fetchone() == (0,)


# ---- broken v1 input ------------------------------------------------------------------------------

ORPHAN = "99999999-0000-0000-0000-000000000001"
BROKEN_ROWS = f"""
alter table v1.tasks add column user_id uuid default gen_random_uuid();
insert into v1.areas (id, domain_id, name) values ('a0000000-0000-0000-0000-000000000001', '{ORPHAN}', 'orphaned area');
insert into v1.projects (id, domain_id, area_id, name)
    select 'b0000000-0000-0000-0000-000000000001', id, 'a0000000-0000-0000-0000-000000000001', 'in orphaned area'
    from v1.domains order by id limit 1;
insert into v1.tasks (id, domain_id, parent_id, title, priority)
    select t.id::uuid, d.id, t.parent::uuid, t.title, t.priority
    from (select id from v1.domains order by id limit 1) as d,
    (values ('e0000000-0000-0000-0000-00000000000a', null, 'priority 7', 7),
            ('e0000000-0000-0000-0000-00000000000b', 'e0000000-0000-0000-0000-00000000000a', 'below it', 3),
            ('e0000000-0000-0000-0000-00000000000c', 'e0000000-0000-0000-0000-00000000000b', 'deeper', 3),
            ('e0000000-0000-0000-0000-00000000000d', 'e0000000-0000-0000-0000-00000000000e', 'cycle 1', 3),
            ('e0000000-0000-0000-0000-00000000000e', 'e0000000-0000-0000-0000-00000000000d', 'cycle 2', 3))
        as t (id, parent, title, priority);
insert into v1.notes (id, task_id, title) values ('f0000000-0000-0000-0000-000000000001',
    'e0000000-0000-0000-0000-00000000000a', 'on a rejected task');
insert into v1.daily_focus (id, focus_date, task_id, slot)
    values ('f0000000-0000-0000-0000-000000000002', '2025-01-01', '{ORPHAN}', 1);
insert into v1.capture (id, raw_text, task_id) values ('f0000000-0000-0000-0000-000000000003', 'x', '{ORPHAN}');
insert into v1.links select * from v1.links where id = (select min(id::text)::uuid from v1.links);
insert into v1.files (id, filename, original_filename, storage_path)
    values ('f0000000-0000-0000-0000-000000000004', 'p', 'p', 'life-os-files/../../etc/passwd'),
    ('f0000000-0000-0000-0000-000000000007', 'p', 'p', 'life-os-files/.lifeos-orphans/x.txt'),
    ('f0000000-0000-0000-0000-000000000008', 'p', 'p', 'life-os-files/' || repeat('n', 300) || '.txt');
insert into v1.reminders (id, task_id, remind_at) values ('f0000000-0000-0000-0000-000000000005', '{ORPHAN}', now()),
    ('f0000000-0000-0000-0000-000000000006',
     (select min(id::text)::uuid from v1.tasks where id::text not like 'e0000000%'), now());
delete from v1.context_types where value = 'quick';
"""


def build_output(**dbt_vars: object) -> str:
    """Run conftest's build and return what it printed (dbt runs in this process and prints to sys.stdout)."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            build(**dbt_vars)
    finally:
        print(out.getvalue())
    return out.getvalue()


@pytest.fixture(scope="module")
def broken_build() -> Iterator[tuple[Cursor, str]]:
    """The sample with its v1 constraints dropped and broken rows added, built once: a cursor and dbt's output."""
    name = new_database()
    with lifeos_env.using_database(name):
        generate_sample.main(["--schema", "v1"])
        with lifeos_env.transaction() as cur:
            cur.execute(
                "select conrelid::regclass::text, conname from pg_constraint"
                " where connamespace = 'v1'::regnamespace and contype in ('p', 'f', 'u', 'c')"
                " order by contype = 'f' desc"
            )
            for table, constraint in cur.fetchall():
                cur.execute(sql.SQL("alter table {} drop constraint if exists {}").format(
                    sql.SQL(table), sql.Identifier(constraint)
                ))  # fmt: skip
            cur.execute(BROKEN_ROWS)
        printed = build_output(accept_rejects=True)
    conn = psycopg2.connect(dbname=name)
    try:
        with conn.cursor() as cur:
            yield cur, printed
    finally:
        conn.close()
        drop_database(name)


def test_broken_rows_are_rejected_or_adjusted_with_their_rule(broken_build: tuple[Cursor, str]) -> None:
    cur, _ = broken_build
    cur.execute("select min(id::text) from v1.links")
    link = cur.fetchone()[0]
    # the sample's own: a task on one day's focus twice, whose later entry (by slot) migrates inactive
    cur.execute(
        "select 'daily_focus', f.id::text, 'adjusted', 'duplicate_deactivated' from v1.daily_focus as f"
        " join v2_work.int_tasks as t on t.id = f.task_id and t.reject_rule is null"
        " where exists (select from v1.daily_focus as g where (g.focus_date, g.task_id) = (f.focus_date, f.task_id)"
        " and (g.slot, g.created_at, g.id) < (f.slot, f.created_at, f.id))"
    )
    repeats = cur.fetchall()
    assert repeats  # the sample has one
    cur.execute("select v1_table, v1_id::text, action, rule from v2_work.migration_rejects")
    assert Counter(cur.fetchall()) == Counter(
        [
            *repeats,
            ("areas", "a0000000-0000-0000-0000-000000000001", "rejected", "orphan_fk"),
            ("capture", "f0000000-0000-0000-0000-000000000003", "adjusted", "orphan_fk_nulled"),
            ("daily_focus", "f0000000-0000-0000-0000-000000000002", "adjusted", "orphan_fk_nulled"),
            ("files", "f0000000-0000-0000-0000-000000000004", "rejected", "unsafe_storage_path"),
            ("files", "f0000000-0000-0000-0000-000000000007", "rejected", "unstorable_storage_path"),
            ("files", "f0000000-0000-0000-0000-000000000008", "rejected", "unstorable_storage_path"),
            ("links", link, "rejected", "duplicate_id"),
            ("links", link, "rejected", "duplicate_id"),
            ("notes", "f0000000-0000-0000-0000-000000000001", "adjusted", "orphan_fk_nulled"),
            ("projects", "b0000000-0000-0000-0000-000000000001", "adjusted", "orphan_fk_nulled"),
            ("reminders", "f0000000-0000-0000-0000-000000000005", "rejected", "orphan_fk"),
            ("tasks", "e0000000-0000-0000-0000-00000000000a", "rejected", "out_of_range"),
            ("tasks", "e0000000-0000-0000-0000-00000000000b", "rejected", "parent_rejected"),
            ("tasks", "e0000000-0000-0000-0000-00000000000c", "rejected", "parent_rejected"),
            ("tasks", "e0000000-0000-0000-0000-00000000000d", "rejected", "parent_cycle"),
            ("tasks", "e0000000-0000-0000-0000-00000000000e", "rejected", "parent_cycle"),
        ]
    )


def test_every_v1_row_is_in_v2_or_rejected(broken_build: tuple[Cursor, str]) -> None:
    cur, _ = broken_build
    for v1_table, v2_table in V1_TO_V2.items():
        cur.execute(
            sql.SQL(
                "select (select count(*) from v1.{v1}),"
                " (select count(*) from v2_shadow.{v2} where id in (select id from v1.{v1}))"
                " + (select count(*) from v2_work.migration_rejects where v1_table = %s and action = 'rejected')"
            ).format(v1=sql.Identifier(v1_table), v2=sql.Identifier(v2_table)),
            (v1_table,),
        )
        in_v1, accounted = cur.fetchone()
        assert in_v1 == accounted, v1_table


def test_rejects_keep_the_whole_v1_row_with_drifted_columns(broken_build: tuple[Cursor, str]) -> None:
    cur, _ = broken_build
    cur.execute(
        "select v1_row ->> 'priority', v1_row ? 'user_id', detail from v2_work.migration_rejects"
        " where v1_id = 'e0000000-0000-0000-0000-00000000000a'"
    )
    assert cur.fetchone() == ("7", True, "priority 7 is not 1-4")


def test_adjusted_rows_are_in_v2_with_the_reference_nulled(broken_build: tuple[Cursor, str]) -> None:
    cur, _ = broken_build
    cur.execute(
        "select (select task_id is null and domain_id is null from v2_shadow.daily_focus"
        "        where id = 'f0000000-0000-0000-0000-000000000002'),"
        " (select task_id is null from v2_shadow.capture where id = 'f0000000-0000-0000-0000-000000000003'),"
        " (select task_id is null from v2_shadow.notes where id = 'f0000000-0000-0000-0000-000000000001'),"
        " (select area_id is null from v2_shadow.projects where id = 'b0000000-0000-0000-0000-000000000001')"
    )
    assert cur.fetchone() == (True, True, True, True)
    cur.execute("select detail from v2_work.migration_rejects where v1_id = 'f0000000-0000-0000-0000-000000000003'")
    assert cur.fetchone() == (f"task_id {ORPHAN} is not in v1 tasks; set to NULL",)


def test_missing_default_context_type_and_polymorphic_reminder(broken_build: tuple[Cursor, str]) -> None:
    cur, _ = broken_build
    cur.execute("select id::text from v2_shadow.context_types where value = 'quick'")
    assert cur.fetchone() == ("5d0f8a52-6c1e-4b7a-9a57-0c6f2a1e0002",)
    cur.execute(
        "select r.entity_type, r.entity_id = v.task_id from v2_shadow.reminders r join v1.reminders v using (id)"
    )
    assert cur.fetchall() == [("task", True)]


def test_unmapped_v1_columns_are_listed_in_the_build_output(broken_build: tuple[Cursor, str]) -> None:
    cur, printed = broken_build
    cur.execute("select v1_table, column_name, data_type from v2_work.v1_unmapped_columns")
    assert cur.fetchall() == [("tasks", "user_id", "uuid")]
    assert "UNMAPPED v1 column tasks.user_id (uuid)" in printed


# Every v1 column in a type a real v1 drifted to, compatible with v2's: text as varchar, text[] as varchar(50)[],
# uuid as text, timestamptz as timestamp, date as timestamp, integer as smallint, bigint as integer; and one slot
# as bigint holding a value v2's integer cannot.
DRIFTED = {"text": "varchar", "_text": "varchar(50)[]", "uuid": "text", "timestamptz": "timestamp",
           "date": "timestamp", "int4": "smallint", "int8": "integer"}  # fmt: skip
UNFIT = "d0000000-0000-0000-0000-000000000001"


def test_v1_columns_of_drifted_types_validate_and_a_value_v2_cannot_hold_is_a_verdict(
    fresh_database: str,
) -> None:
    del fresh_database
    generate_sample.main(["--schema", "v1"])
    with lifeos_env.transaction() as cur:
        cur.execute(
            "select conrelid::regclass::text, conname from pg_constraint"
            " where connamespace = 'v1'::regnamespace order by contype = 'f' desc"
        )
        for table, constraint in cur.fetchall():  # the FKs would tie uuid to uuid; the 1-3 slot check refuse UNFIT
            cur.execute(sql.SQL("alter table {} drop constraint {}").format(sql.SQL(table), sql.Identifier(constraint)))
        cur.execute(
            "select table_name, column_name, udt_name from information_schema.columns where table_schema = 'v1'"
        )
        drifted = {
            (table, column): "bigint" if (table, column) == ("daily_focus", "slot") else DRIFTED[udt]
            for table, column, udt in cur.fetchall()
            if udt in DRIFTED
        }
        for (table, column), type_ in drifted.items():
            cur.execute(
                sql.SQL("alter table v1.{} alter {} type {}").format(
                    sql.Identifier(table), sql.Identifier(column), sql.SQL(type_)
                )
            )
        cur.execute(f"insert into v1.daily_focus (id, focus_date, slot) values ('{UNFIT}', '2025-01-01', 3000000000)")
    assert len(drifted) > 80 and drifted[("notes", "tags")] == "varchar(50)[]" and drifted[("tasks", "id")] == "text"
    build(accept_rejects=True)  # raises when a check fails
    with lifeos_env.transaction() as cur:
        cur.execute(
            "select v1_table, v1_id::text, rule, detail from v2_work.migration_rejects where action = 'rejected'"
        )
        assert cur.fetchall() == [("daily_focus", UNFIT, "out_of_range", "slot 3000000000 does not fit v2's integer")]
        cur.execute(
            "select count(*), count(*) filter (where n.tags is not distinct from v.tags::text[]"
            " and n.created_at = v.created_at::timestamptz) from v2_shadow.notes n join v1.notes v on n.id = v.id::uuid"
        )
        assert cur.fetchone() == (50, 50)


def test_the_files_step_reads_int_files_before_the_marts_are_built(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    del fresh_database
    storage_root = "/srv/lifeos files"
    monkeypatch.setenv("LIFEOS_STORAGE_ROOT", storage_root)
    generate_sample.main(["--schema", "v1"])
    with lifeos_env.transaction() as cur:
        cur.execute(
            "update v1.files set storage_path = %s where id = (select min(id::text)::uuid from v1.files)",
            (f"{STORAGE_URL}/public/life-os-files/a%00b",),
        )
    migrate.build_int_files()
    with lifeos_env.transaction() as cur:
        cur.execute(
            "select count(*), count(object_key), count(*) filter (where reject_rule = 'unsafe_storage_path'),"
            " bool_and(storage_path = %s || '/' || object_key), sum(size_bytes) > 0"
            " from v2_work.int_files",
            (storage_root,),
        )
        assert cur.fetchone() == (20, 19, 1, True, True)


STORAGE_URL = "https://abc.supabase.co/storage/v1/object"
# Object names Storage accepts that a path or URL might mangle: NFD, spaces, #, &, ?, (1), emoji, %, +.
ROUND_TRIP_KEYS = [
    "Cafe\u0301/man\u0303ana.txt",
    "space folder/a  b .pdf",
    "hash#tag & more?.txt",
    "copy (1).png",
    "emoji 🌅👩‍👩‍👧/🚀.bin",
    "uploads/report%20final.pdf",
    "100%25 done+more.txt",
]


def test_storage_keys_bare_keys_are_literal_urls_decoded_and_the_inventory_wins(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One rule for which keys become paths (the int_files verdict); keys round-trip byte for byte."""
    del fresh_database
    monkeypatch.setenv("LIFEOS_STORAGE_ROOT", "/srv/files")
    generate_sample.main(["--schema", "v1"])
    unsafe = [
        "a/./b.txt",
        "a//b.txt",
        "life-os-files/./x.txt",
        "./x.txt",
        "x/.",
        f"{STORAGE_URL}/public/life-os-files/a/%2E/b",
    ]
    cases = {
        **{key: key for key in ROUND_TRIP_KEYS},  # bare: literal, however they look
        **{f"life-os-files/{key}": key for key in ROUND_TRIP_KEYS},
        **{f"{STORAGE_URL}/public/life-os-files/{quote(key)}": key for key in ROUND_TRIP_KEYS},  # URLs: decoded
        **{f"{STORAGE_URL}/sign/life-os-files/{quote(key)}?token=a%20b#c": key for key in ROUND_TRIP_KEYS},
        "in inventory as written%20.pdf": "in inventory as written%20.pdf",
        "only decoded in%20inventory.pdf": "only decoded in inventory.pdf",  # an encoded bare key v1 wrote
        f"{STORAGE_URL}/public/life-os-files/literal%20name.pdf": "literal%20name.pdf",  # an unencoded URL
        f"{STORAGE_URL}/public/life-os-files/both%20names.pdf": "both names.pdf",
        **{path: None for path in unsafe},
    }
    inventory = [
        "in inventory as written%20.pdf",
        "in inventory as written .pdf",
        "only decoded in inventory.pdf",
        "literal%20name.pdf",
        "both%20names.pdf",
        "both names.pdf",
    ]
    with lifeos_env.transaction() as cur:
        cur.execute("create table v1.storage_objects (id uuid, bucket_id text, name text, metadata jsonb)")
        cur.executemany(
            "insert into v1.storage_objects values (gen_random_uuid(), %s, %s, '{}')",
            [*(("life-os-files", n) for n in inventory), ("avatars", "only decoded in%20inventory.pdf")],
        )
        cur.execute("create temporary table paths (storage_path text)")
        cur.executemany("insert into paths values (%s)", [(path,) for path in cases])
        cur.execute(
            "insert into v1.files (id, filename, original_filename, storage_path)"
            " select gen_random_uuid(), 'f', 'f', storage_path from paths"
        )
    migrate.build_int_files()
    with lifeos_env.transaction() as cur:
        cur.execute(
            "select v.storage_path, f.object_key, f.storage_path, f.reject_rule, f.reject_detail"
            " from v2_work.int_files f join v1.files v on v.id = f.id where v.storage_path = any(%s)",
            (list(cases),),
        )
        found = {path: (key, local, rule, detail) for path, key, local, rule, detail in cur.fetchall()}
    assert {path: key for path, (key, *_) in found.items()} == cases
    for path, (key, local, rule, detail) in found.items():
        if key is None:
            assert rule == "unsafe_storage_path" and local is None, path
            assert detail.endswith(("has a . or .. segment", "has an empty segment (//)")), detail
        else:
            assert (rule, local.encode()) == (None, f"/srv/files/{key}".encode()), path


def test_the_build_prints_no_warning(broken_build: tuple[Cursor, str]) -> None:
    _, printed = broken_build
    assert [line for line in printed.splitlines() if "WARNING" in line] == []
