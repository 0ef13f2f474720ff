"""The complete v2 schema on a real database: the exported DDL, the catalog check,
the universal columns, polymorphic references, task dependencies and search."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest
from conftest import LIVE, run_dbt
from psycopg2 import sql

import export_ddl
import lifeos_env
import migrate
from lifeos import mart_checks
from lifeos.settings import load as load_settings

Cursor = psycopg2.extensions.cursor
POLYMORPHIC = ("reminders", "note_links", "entity_tags", "activity_log", "search_index")
ACYCLIC = "tasks bookmark_folders task_dependencies"  # the marts with the rule acyclic
# the universal columns a table leaves out, each for the reason its YAML gives
OMITTED = {
    "activity_log": {"sort_order"},
    "search_index": {"sort_order"},
    "search_index_queue": {"is_active", "sort_order"},
}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    """dbt's manifest of the project as it is, parsed into this worker's target folder."""
    migrate.dbt("parse")
    return json.loads((load_settings().target / "manifest.json").read_text())


@pytest.fixture
def live(published: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cursor]:
    """An autocommit cursor on the published copy, its schema first on the search_path; PGDATABASE names it for dbt.
    Tests undo their writes."""
    monkeypatch.setenv("PGDATABASE", published)
    conn = psycopg2.connect(dbname=published, options=f"-c search_path={LIVE}")
    conn.autocommit = True
    with conn.cursor() as cur:
        yield cur
    conn.close()


@pytest.fixture
def v2(sample_db: Cursor, migrated_v2_schema: str) -> Cursor:
    """The migrated sample, read-only, with its v2 schema as the search_path."""
    sample_db.execute(sql.SQL("set local search_path to {}").format(sql.Identifier(migrated_v2_schema)))
    return sample_db


def dbt_test(select: str) -> dict[str, list[tuple[object, ...]]]:
    """Run `dbt test --select` on the live schema; `<rule>:<mart>` -> the rows each failing rule of the marts'
    mart_checks, or the catalog test, finds, each row's values but its problem (none: every rule passed)."""
    success, _, log = run_dbt("test", "--select", select, "--vars", f"{{marts_schema: {LIVE}}}")
    results = [
        result
        for result in json.loads((load_settings().target / "run_results.json").read_text())["results"]
        if result["unique_id"].startswith("test.")
    ]
    assert results and all(r["status"] in ("pass", "fail") for r in results), log[-3000:]
    found: dict[str, list[tuple[object, ...]]] = {}
    with lifeos_env.transaction() as cur:
        for result in results:
            name = result["unique_id"].split(".")[2]
            cur.execute(result["compiled_code"])
            for rule_or_mart, _, row in cur.fetchall():  # the catalog test's rows name their mart
                values = tuple(value for column, value in row.items() if column != "problem")
                check = (
                    f"{name}:{rule_or_mart}"
                    if name == mart_checks.CATALOG
                    else f"{rule_or_mart}:{name.removeprefix(f'{mart_checks.TEST}_')}"
                )
                found.setdefault(check, []).append(values)
    assert (not success) == bool(found), log[-3000:]
    return found


def failing(found: dict[str, list[tuple[object, ...]]], rule: str) -> dict[str, list[tuple[object, ...]]]:
    """The failing rows of `rule` in what dbt_test found, sorted."""
    return {name: sorted(rows) for name, rows in found.items() if name.split(":")[0] == rule}


@pytest.mark.both_servers  # the server's deparse of the built schema
def test_ddl_file_matches_the_build(migrated_sample: str, migrated_v2_schema: str) -> None:
    built = export_ddl.dump_schema_ddl(load_settings(), migrated_sample, migrated_v2_schema)
    assert as_deparsed(export_ddl.DDL_FILE.read_text()) == as_deparsed(built), (
        "schema/lifeos_r1_full_schema.sql is stale: run scripts/export_ddl"
    )


def as_deparsed(ddl: str) -> str:
    """The DDL as every server deparses it: PostgreSQL 15 writes a function body's table alias without AS."""
    return re.sub(r"(\w) AS (\w+)$", r"\1 \2", ddl, flags=re.MULTILINE)


@pytest.mark.usefixtures("fresh_database")
@pytest.mark.both_servers  # the server's deparse of schema/v2.sql
def test_ddl_file_applies_to_an_empty_database_and_dumps_back_the_same() -> None:
    with lifeos_env.transaction() as cur:  # a plain public schema, without the default one's comment
        cur.execute("drop schema public cascade; create schema public")
    psql = lifeos_env.pg_client("psql", export_ddl.PG_DUMP_MAJOR)
    subprocess.run([str(psql), "-q", "-v", "ON_ERROR_STOP=1", "-f", str(export_ddl.DDL_FILE)], check=True,
                   capture_output=True, env=os.environ.copy())  # fmt: skip
    dumped = export_ddl.dump_schema_ddl(load_settings(), os.environ["PGDATABASE"], "public")
    assert as_deparsed(dumped) == as_deparsed(export_ddl.DDL_FILE.read_text())


@pytest.mark.both_servers  # the server's catalog
def test_every_table_has_the_universal_columns_and_trigger(v2: Cursor, manifest: dict[str, Any]) -> None:
    """Plan §3: id, created_at, updated_at (with its trigger), is_active and sort_order on every table; a table
    leaves one out only where its YAML says why (config.meta.universal_columns_omitted, with a comment)."""
    omitted = {
        node["alias"]: set(node["config"]["meta"].get("universal_columns_omitted", []))
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"].get("contract", {}).get("enforced")
    }
    assert omitted == {table: OMITTED.get(table, set()) for table in omitted}
    v2.execute(
        """
        select t.table_name, c.column_name, c.data_type, c.is_nullable, c.column_default
        from information_schema.tables t
        join information_schema.columns c using (table_schema, table_name)
        where t.table_schema = current_schema() and t.table_type = 'BASE TABLE'
          and c.column_name in ('id', 'created_at', 'updated_at', 'is_active', 'sort_order')
        """
    )
    columns: dict[str, dict[str, tuple[str, str, str]]] = {}
    for table, column, data_type, nullable, default in v2.fetchall():
        columns.setdefault(table, {})[column] = (data_type, nullable, default)
    assert set(columns) == set(omitted) and len(columns) == 35
    universal = {
        "id": ("uuid", "NO", "gen_random_uuid()"),
        "created_at": ("timestamp with time zone", "NO", "now()"),
        "updated_at": ("timestamp with time zone", "NO", "now()"),
        "is_active": ("boolean", "NO", "true"),
        "sort_order": ("integer", "NO", "0"),
    }
    for table, found in columns.items():
        assert found == {k: v for k, v in universal.items() if k not in omitted[table]}, table
    v2.execute(
        "select c.relname from pg_trigger t join pg_class c on c.oid = t.tgrelid"
        " where c.relnamespace = current_schema()::regnamespace and t.tgname = c.relname || '_set_updated_at'"
    )
    assert {name for (name,) in v2.fetchall()} == set(columns)


@pytest.mark.both_servers  # the server's catalog
def test_catalog_check_names_what_a_cascading_rebuild_dropped(live: Cursor) -> None:
    assert failing(dbt_test(mart_checks.CATALOG), mart_checks.CATALOG) == {}
    # the search functions, whose bodies read contacts, go with it: kept to put back
    live.execute(
        "select pg_get_functiondef(oid) from pg_proc where pronamespace = current_schema()::regnamespace"
        " and (proname like 'search\\_index\\_upsert\\_%' or proname = 'refresh_search_index')"
    )
    search_functions = [definition for (definition,) in live.fetchall()]
    assert len(search_functions) == 9
    # what dbt does when it rebuilds a table that exists: the old one goes with DROP ... CASCADE
    live.execute(
        """
        alter table contacts rename to contacts__dbt_backup;
        create table contacts (like contacts__dbt_backup including defaults);
        drop table contacts__dbt_backup cascade;
        drop index list_items_list_id_idx;
        drop trigger lists_set_updated_at on lists;
        alter table tags alter column is_active drop default;
        alter table tags alter column name drop not null;
        alter table releases rename constraint releases_status_check to releases__dbt_tmp_status_check;
        """
    )
    try:
        assert failing(dbt_test(mart_checks.CATALOG), mart_checks.CATALOG) == {
            "catalog_matches_contract:contacts": [
                ("constraint", "contacts_pkey"),
                ("index", "contacts_is_active_idx"),
                ("trigger", "contacts_delete_references"),
                ("trigger", "contacts_search_index_sync_insert"),
                ("trigger", "contacts_search_index_sync_update"),
                ("trigger", "contacts_set_updated_at"),
            ],
            "catalog_matches_contract:contact_group_members": [("constraint", "contact_group_members_contact_id_fkey")],
            "catalog_matches_contract:event_attendees": [("constraint", "event_attendees_contact_id_fkey")],
            "catalog_matches_contract:project_contacts": [("constraint", "project_contacts_contact_id_fkey")],
            "catalog_matches_contract:list_items": [("index", "list_items_list_id_idx")],
            "catalog_matches_contract:tasks": [("constraint", "tasks_assigned_to_fkey")],
            "catalog_matches_contract:lists": [("trigger", "lists_set_updated_at")],
            "catalog_matches_contract:tags": [("default", "is_active"), ("not_null", "name")],
            "catalog_matches_contract:releases": [("constraint", "releases_status_check")],
        }
    finally:
        live.execute(
            """
            alter table tags alter column is_active set default true;
            alter table tags alter column name set not null;
            alter table releases rename constraint releases__dbt_tmp_status_check to releases_status_check;
            create trigger lists_set_updated_at before update on lists
                for each row execute function set_updated_at();
            create index list_items_list_id_idx on list_items (list_id);
            alter table contacts add constraint contacts_pkey primary key (id);
            create index contacts_is_active_idx on contacts (is_active);
            create trigger contacts_set_updated_at before update on contacts
                for each row execute function set_updated_at();
            create trigger contacts_delete_references after delete on contacts
                for each row execute function delete_polymorphic_references('contact');
            alter table contact_group_members add constraint contact_group_members_contact_id_fkey
                foreign key (contact_id) references contacts (id) on delete cascade;
            alter table event_attendees add constraint event_attendees_contact_id_fkey
                foreign key (contact_id) references contacts (id) on delete cascade;
            alter table project_contacts add constraint project_contacts_contact_id_fkey
                foreign key (contact_id) references contacts (id) on delete cascade;
            alter table tasks add constraint tasks_assigned_to_fkey
                foreign key (assigned_to) references contacts (id) on delete set null;
            create trigger contacts_search_index_sync_insert after insert on contacts
                referencing new table as new_rows
                for each statement execute function search_index_enqueue('contact');
            create trigger contacts_search_index_sync_update after update on contacts for each row
                when (old.name is distinct from new.name or old.email is distinct from new.email
                    or old.company is distinct from new.company or old.role is distinct from new.role
                    or old.notes is distinct from new.notes or old.is_active is distinct from new.is_active)
                execute function search_index_enqueue('contact');
            """
        )
        for definition in search_functions:
            live.execute(definition)
    assert failing(dbt_test(mart_checks.CATALOG), mart_checks.CATALOG) == {}


def test_a_mart_that_is_gone_is_named_by_the_catalog_check_and_the_other_marts_still_pass(live: Cursor) -> None:
    """The catalog check reads every mart in one query: a missing table fails its own mart (the table first,
    then each object it declares), not the whole check with an error."""
    live.execute("alter table user_settings rename to user_settings_away")
    try:
        found = failing(dbt_test(mart_checks.CATALOG), mart_checks.CATALOG)
    finally:
        live.execute("alter table user_settings_away rename to user_settings")
    assert found.keys() == {"catalog_matches_contract:user_settings"}
    missing = found["catalog_matches_contract:user_settings"]
    assert ("table", "user_settings") in missing and ("constraint", "user_settings_pkey") in missing


@pytest.mark.both_servers  # the server's deparse of CHECKs
def test_polymorphic_checks_allow_exactly_what_their_test_resolves(v2: Cursor, manifest: dict[str, Any]) -> None:
    resolved = {
        node["attached_node"].split(".")[-1]: sorted(rules["polymorphic_reference_resolves"]["entity_types"])
        for node in manifest["nodes"].values()
        if node.get("test_metadata", {}).get("name") == mart_checks.TEST
        and "polymorphic_reference_resolves" in (rules := mart_checks.rules(node["test_metadata"]["kwargs"]))
    }
    assert set(resolved) == set(POLYMORPHIC)
    for table, entity_types in resolved.items():
        v2.execute(
            "select pg_get_constraintdef(oid) from pg_constraint where conrelid = %s::regclass and contype = 'c'"
            " and pg_get_constraintdef(oid) like '%%entity_type = ANY%%'",  # the allowed list, not other checks
            (table,),
        )
        (check,) = v2.fetchone()
        assert sorted(re.findall(r"'(\w+)'::text", check)) == entity_types, table


def test_polymorphic_references_that_point_nowhere_fail(live: Cursor) -> None:
    """The write-time triggers refuse such rows (test_app.py); rows that got in around them still fail the test."""
    live.execute(
        """
        insert into tags (name) values ('Urgent'), ('errands');
        insert into note_links (note_id, entity_type, entity_id)
            select (select min(id::text)::uuid from notes), 'task', tasks.id from tasks order by tasks.id limit 2;
        insert into entity_tags (tag_id, entity_type, entity_id)
            select tags.id, 'project', (select min(id::text)::uuid from projects) from tags where name = 'Urgent';
        insert into activity_log (entity_type, entity_id, action)
            values ('domain', (select min(id::text)::uuid from domains), 'updated'),
                   ('task', gen_random_uuid(), 'deleted');
        """
    )
    try:
        assert failing(dbt_test(" ".join(POLYMORPHIC)), "polymorphic_reference_resolves") == {}
        live.execute(
            """
            set session_replication_role = replica;  -- no triggers: the rows the app is refused
            insert into note_links (note_id, entity_type, entity_id)
                values ((select min(id::text)::uuid from notes), 'task', '00000000-0000-0000-0000-00000000abcd');
            insert into entity_tags (tag_id, entity_type, entity_id)
                values ((select id from tags where name = 'Urgent'), 'contact', '00000000-0000-0000-0000-00000000abce');
            insert into activity_log (entity_type, entity_id, action)
                values ('milestone', '00000000-0000-0000-0000-00000000abcf', 'updated');
            reset session_replication_role;
            """
        )
        assert failing(dbt_test(" ".join(POLYMORPHIC)), "polymorphic_reference_resolves") == {
            "polymorphic_reference_resolves:note_links": [("task", "00000000-0000-0000-0000-00000000abcd")],
            "polymorphic_reference_resolves:entity_tags": [("contact", "00000000-0000-0000-0000-00000000abce")],
            "polymorphic_reference_resolves:activity_log": [("milestone", "00000000-0000-0000-0000-00000000abcf")],
        }
        with pytest.raises(psycopg2.errors.CheckViolation):
            live.execute(
                "insert into note_links (note_id, entity_type, entity_id)"
                " values ((select id from notes limit 1), 'planet', gen_random_uuid())"
            )
    finally:
        live.execute("delete from note_links; delete from entity_tags; delete from activity_log; delete from tags")


def test_task_dependencies_refuse_self_and_duplicate_edges_and_cycles_fail(live: Cursor) -> None:
    live.execute("select id from tasks order by id limit 3")
    a, b, c = (task for (task,) in live.fetchall())
    with pytest.raises(psycopg2.errors.CheckViolation):
        live.execute("insert into task_dependencies (task_id, depends_on_task_id) values (%s, %s)", (a, a))
    live.execute("insert into task_dependencies (task_id, depends_on_task_id) values (%s, %s), (%s, %s)", (a, b, b, c))
    try:
        with pytest.raises(psycopg2.errors.UniqueViolation):
            live.execute("insert into task_dependencies (task_id, depends_on_task_id) values (%s, %s)", (a, b))
        assert failing(dbt_test(ACYCLIC), "acyclic") == {}
        with pytest.raises(psycopg2.errors.CheckViolation):  # refused at write time (test_app.py) ...
            live.execute("insert into task_dependencies (task_id, depends_on_task_id) values (%s, %s)", (c, a))
        live.execute(  # ... and caught by the test when it gets in around the trigger
            "set session_replication_role = replica;"
            " insert into task_dependencies (task_id, depends_on_task_id) values (%s, %s);"
            " reset session_replication_role",
            (c, a),
        )
        cycles = failing(dbt_test(ACYCLIC), "acyclic")
        assert list(cycles) == ["acyclic:task_dependencies"]
        assert {start for start, _ in cycles["acyclic:task_dependencies"]} == {a, b, c}
    finally:
        live.execute("delete from task_dependencies")


def test_bookmark_folders_nest_and_a_loop_fails(live: Cursor) -> None:
    live.execute("insert into bookmark_folders (name) values ('Dev') returning id")
    (top,) = live.fetchone()
    live.execute("insert into bookmark_folders (name, parent_id) values ('Python', %s) returning id", (top,))
    (child,) = live.fetchone()
    try:
        assert failing(dbt_test("bookmark_folders"), "acyclic") == {}
        with pytest.raises(psycopg2.errors.CheckViolation):
            live.execute("update bookmark_folders set parent_id = %s where id = %s", (child, top))
        live.execute(
            "set session_replication_role = replica; update bookmark_folders set parent_id = %s where id = %s;"
            " reset session_replication_role",
            (child, top),
        )
        assert list(failing(dbt_test("bookmark_folders"), "acyclic")) == ["acyclic:bookmark_folders"]
        live.execute("delete from bookmark_folders where id = %s", (child,))  # cascades to its subfolders
        live.execute("select count(*) from bookmark_folders")
        assert live.fetchone() == (0,)
    finally:
        live.execute("delete from bookmark_folders")


SEARCH_SOURCES = {
    "task": "tasks",
    "note": "notes",
    "bookmark": "bookmarks",
    "project": "projects",
    "capture": "capture",
    "calendar_event": "calendar_events",
    "contact": "contacts",
    "file": "files",
}


def test_search_index_covers_every_source_and_finds_words(v2: Cursor) -> None:
    v2.execute(
        "select entity_type, count(*) from search_index group by 1"
        + "".join(f" union all select '{kind}', -count(*) from {table}" for kind, table in SEARCH_SOURCES.items())
    )
    totals: dict[str, int] = {}
    for entity_type, count in v2.fetchall():
        totals[entity_type] = totals.get(entity_type, 0) + count
    assert totals == dict.fromkeys(SEARCH_SOURCES, 0)
    v2.execute("select count(*) from search_index")
    assert v2.fetchone()[0] > 0
    v2.execute(
        "select amname from pg_index join pg_class i on i.oid = indexrelid join pg_am on pg_am.oid = i.relam"
        " where i.relname = 'search_index_document_idx' and i.relnamespace = current_schema()::regnamespace"
    )
    assert v2.fetchone() == ("gin",)


def test_search_is_current_at_commit_and_a_refresh_changes_nothing(live: Cursor) -> None:
    index_content = "select md5(string_agg(s::text, ',' order by s.id)) from search_index s"
    live.execute(index_content)
    before = live.fetchone()
    live.execute("select refresh_search_index()")  # named through its own schema: works after the rename
    live.execute(index_content)
    assert live.fetchone() == before, "a refresh of unchanged items must give the same rows (ids, timestamps)"
    live.execute("select id from domains order by id limit 1")
    (domain,) = live.fetchone()
    live.execute(
        "insert into notes (domain_id, title, body) values (%s, 'Quittung für Zürich', 'Steuer 2026 🧾') returning id",
        (domain,),
    )
    (note,) = live.fetchone()
    search = (
        "select entity_type, entity_id from search_index where document @@ search_query('zürich steuer') and is_active"
    )
    try:
        live.execute(search)
        assert live.fetchall() == [("note", note)]
        live.execute(index_content)
        kept = live.fetchone()
        live.execute("select refresh_search_index()")
        live.execute(index_content)
        assert live.fetchone() == kept
    finally:
        live.execute("delete from notes where id = %s", (note,))
    live.execute(index_content)
    assert live.fetchone() == before
