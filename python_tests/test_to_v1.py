"""Rolling back to v1 without hand work (plan §8, issue 20): `scripts/publish export-changes --to-v1` writes
what the app wrote to v2 as SQL in v1's shape, and psql applies it to v1 as Supabase has it."""

from __future__ import annotations

import csv
import datetime
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import sqlalchemy
from conftest import TEMPLATE_STORAGE
from psycopg2 import sql
from sqlalchemy import text
from test_app import app_url

import lifeos_env
import make_supabase_dump
import publish
from lifeos import catalog, export_changes, grants
from lifeos.settings import load as load_settings

pytestmark = pytest.mark.both_servers  # the export applied to a Supabase-shaped v1 (PostgreSQL 15 on Supabase)

TABLE_MD5 = "select md5(coalesce(string_agg(t::text, e'\\n' order by t::text), '')) from {} t"
V1_TABLES = ("domains", "areas", "projects", "tasks", "notes", "links", "files", "capture", "daily_focus",
             "context_types", "reminders")  # fmt: skip
TARGET_DATE = datetime.date(2027, 3, 1)
# text that psql must not read as SQL, a meta-command or a variable: it stays the note's body
HOSTILE = "it's 80 cm'); drop table tasks; --\n\\! touch pwned\n:'v1' \\. \\\\ 東京 🚀\ttab"


@pytest.fixture
def live(sample_copy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The sample migrated and published (a copy of the run's `scripts/migrate --sample`) as live v2."""
    monkeypatch.setenv("LIFEOS_BACKUP_DIR", str(tmp_path / "backups"))
    monkeypatch.setenv("LIFEOS_STORAGE_ROOT", TEMPLATE_STORAGE["LIFEOS_STORAGE_ROOT"])  # where the copy's blobs are
    return sample_copy


@pytest.fixture
def app(live: str) -> Iterator[sqlalchemy.Engine]:
    """The app's way in: a NON-SUPERUSER login role with the grants publish gives it, over SQLAlchemy."""
    role = f"lifeos_app_{uuid.uuid4().hex[:8]}"
    with lifeos_env.transaction() as cur:
        cur.execute(sql.SQL("create role {} login nosuperuser nocreatedb nocreaterole").format(sql.Identifier(role)))
        grants.grant_app_role(cur, "public", role)
    engine = sqlalchemy.create_engine(app_url(live, role), poolclass=sqlalchemy.NullPool)
    yield engine
    engine.dispose()
    with lifeos_env.transaction() as cur:
        cur.execute(sql.SQL("drop owned by {0}; drop role {0}").format(sql.Identifier(role)))


def one(database: str, query: str, *args: Any) -> tuple:
    conn = psycopg2.connect(dbname=database)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchone()
    finally:
        conn.close()


def v1_checksums(database: str) -> dict[str, str]:
    conn = psycopg2.connect(dbname=database)
    try:
        with conn, conn.cursor() as cur:
            result = {}
            for table in V1_TABLES:
                cur.execute(sql.SQL(TABLE_MD5).format(catalog.qualified("public", table)))
                result[table] = cur.fetchone()[0]
            return result
    finally:
        conn.close()


def apply(script: Path, database: str) -> subprocess.CompletedProcess:
    """`psql -f` as a person runs it on v1: no options beyond the file's own."""
    return subprocess.run(
        [lifeos_env.pg_client("psql"), "-X", "-q", "-d", database, "-f", str(script)],
        capture_output=True, text=True, cwd=script.parent,
    )  # fmt: skip


def export(out: Path) -> list[dict[str, str]]:
    """Export to v1 into `out`; the rows it lists as not representable."""
    assert publish.main(["export-changes", "--to-v1", "--out", str(out)]) == 0
    listed = out / "not_representable.csv"
    return list(csv.DictReader(listed.open())) if listed.exists() else []


def migrated(table: str, offset: int = 0) -> str:
    """The id of one migrated row of a v1 table (ordered by id)."""
    with lifeos_env.transaction() as cur:
        cur.execute(sql.SQL("select id::text from v1.{} order by id offset %s limit 1").format(sql.Identifier(table)),
                    (offset,))  # fmt: skip
        return cur.fetchone()[0]


def test_the_apps_writes_reach_v1_in_v1s_shape_and_v1_refuses_what_breaks_its_rules(
    app: sqlalchemy.Engine, supabase_v1: str, tmp_path: Path
) -> None:
    with lifeos_env.transaction() as cur:  # the scratch v1 holds the rows the sample migrated
        cur.execute("select count(*), md5(string_agg(id::text, ',' order by id)) from v1.tasks")
        assert (
            one(supabase_v1, "select count(*), md5(string_agg(id::text, ',' order by id)) from tasks") == cur.fetchone()
        )
    edited_project, edited_task, edited_link, gone_link = (
        migrated("projects"), migrated("tasks"), migrated("links"), migrated("links", 1)
    )  # fmt: skip
    edited_file, gone_focus = migrated("files"), migrated("daily_focus")
    v1_path = one(supabase_v1, "select storage_path from files where id = %s", edited_file)[0]
    root = TEMPLATE_STORAGE["LIFEOS_STORAGE_ROOT"]
    with app.begin() as db:  # what the app does in v2: create, update and delete in several tables

        def new(statement: str, **values: Any) -> str:
            return str(db.execute(text(statement + " returning id"), values).scalar_one())

        domain = new("insert into domains (name, color) values (:name, '#00aa00')", name='Garden, "new" in v2')
        project = new("insert into projects (domain_id, name, target_date, priority) values (:d, 'Pond', :due, 1)",
                      d=domain, due=TARGET_DATE)  # fmt: skip
        task = new("insert into tasks (domain_id, project_id, title, due_date, energy_level)"
                   " values (:d, :p, 'Dig it', :due, 'high')", d=domain, p=project, due=TARGET_DATE)  # fmt: skip
        subtask = new("insert into tasks (domain_id, parent_id, title) values (:d, :t, 'Line it')", d=domain, t=task)
        bookmark = new("insert into bookmarks (project_id, label, url, favicon_url) values (:p, 'Liners',"
                       " 'https://example.org/liners', 'https://example.org/favicon.ico')", p=project)  # fmt: skip
        note = new("insert into notes (task_id, title, body, is_pinned) values (:t, 'Depth', :body, true)",
                   t=task, body=HOSTILE)  # fmt: skip
        blob = new("insert into files (task_id, filename, original_filename, storage_path)"
                   " values (:t, 'x_plan.pdf', 'plan.pdf', :path)", t=task, path=f"{root}/v2/plan.pdf")  # fmt: skip
        project_reminder = new("insert into reminders (entity_type, entity_id, remind_at) values ('project', :p,"
                               " now())", p=project)  # fmt: skip
        tag = new("insert into tags (name) values ('pond')")
        db.execute(text("update projects set name = 'Renamed in v2', target_date = :due where id = :id"),
                   {"due": TARGET_DATE, "id": edited_project})  # fmt: skip
        db.execute(text("update tasks set title = 'Retitled in v2', parent_id = :t where id = :id"),
                   {"t": subtask, "id": edited_task})  # fmt: skip
        db.execute(text("update bookmarks set label = 'Relabelled in v2' where id = :id"), {"id": edited_link})
        db.execute(text("update files set description = 'described in v2' where id = :id"), {"id": edited_file})
        db.execute(text("delete from bookmarks where id = :id"), {"id": gone_link})
        db.execute(text("delete from daily_focus where id = :id"), {"id": gone_focus})
    with lifeos_env.transaction() as cur:
        cur.execute("select count(*) from lifeos_migration.runs")
        runs = cur.fetchone()

    listed = export(tmp_path / "first")
    with lifeos_env.transaction() as cur:  # the export reads live v2: the shadow and the ledger are not touched
        cur.execute("select count(*) from lifeos_migration.runs")
        assert cur.fetchone() == runs
        cur.execute("select count(*) from pg_views where schemaname = 'v2_work' and viewname like 'v1\\_%'")
        assert cur.fetchone() == (0,)  # nor does any view of the export stay on top of the app's tables
    not_held = {(row["v2_table"], row["id"]): row["reason"] for row in listed}
    assert not_held[("reminders", project_reminder)] == "a reminder of a project: v1 reminds of tasks only"
    assert not_held[("tags", tag)] == "v1 has no table tags"
    assert {table for table, _ in not_held} == {"reminders", "tags", "activity_log"}  # a delete's history: v2 only
    with (tmp_path / "first" / "blobs_to_upload.csv").open() as blobs:
        assert list(csv.DictReader(blobs)) == [
            {"file_id": blob, "v2_path": f"{root}/v2/plan.pdf", "bucket": "life-os-files", "key": "v2/plan.pdf"}
        ]
    before = v1_checksums(supabase_v1)
    applied = apply(tmp_path / "first" / "to_v1.sql", supabase_v1)
    assert applied.returncode == 0, applied.stderr
    assert not (tmp_path / "first" / "pwned").exists()  # the note's text ran no psql meta-command

    # v1 holds the app's writes in v1's names and shape; Supabase's user_id is the one every v1 row has
    user = make_supabase_dump.USER_ID
    assert one(supabase_v1, "select name, color from domains where id = %s", domain) == (
        'Garden, "new" in v2',
        "#00aa00",
    )
    assert one(supabase_v1, "select name, due_date, status from projects where id = %s", project) == (
        "Pond", TARGET_DATE, "active"
    )  # fmt: skip
    assert one(supabase_v1, "select title, due_date, project_id::text, user_id::text from tasks where id = %s",
               task) == ("Dig it", TARGET_DATE, project, user)  # fmt: skip
    assert one(supabase_v1, "select parent_id::text, user_id::text from tasks where id = %s", subtask) == (task, user)
    assert one(supabase_v1, "select label, url, project_id::text from links where id = %s", bookmark) == (
        "Liners", "https://example.org/liners", project
    )  # fmt: skip
    assert one(supabase_v1, "select body, user_id::text from notes where id = %s", note) == (HOSTILE, user)
    assert one(supabase_v1, "select storage_path from files where id = %s", blob) == ("v2/plan.pdf",)
    assert one(supabase_v1, "select count(*) from reminders where id = %s", project_reminder) == (0,)
    assert one(supabase_v1, "select name, due_date from projects where id = %s", edited_project) == (
        "Renamed in v2", TARGET_DATE
    )  # fmt: skip
    assert one(supabase_v1, "select title, parent_id::text, user_id::text from tasks where id = %s", edited_task) == (
        "Retitled in v2", subtask, user
    )  # fmt: skip
    assert one(supabase_v1, "select label from links where id = %s", edited_link) == ("Relabelled in v2",)
    assert one(supabase_v1, "select description, storage_path from files where id = %s", edited_file) == (
        "described in v2", v1_path  # v1's own storage_path, not the bare key v2's path maps back to
    )  # fmt: skip
    assert one(supabase_v1, "select count(*) from links where id = %s", gone_link) == (0,)
    assert one(supabase_v1, "select count(*) from daily_focus where id = %s", gone_focus) == (0,)
    after = v1_checksums(supabase_v1)
    assert {table for table in V1_TABLES if after[table] != before[table]} == {
        "domains", "projects", "tasks", "notes", "links", "files", "daily_focus"
    }  # fmt: skip

    # a row v1's rules refuse (v1 allows 3 focus slots a day, v2 any number): psql stops, v1 stays as it was
    with app.begin() as db:
        db.execute(text("insert into daily_focus (focus_date, task_id, slot) values (current_date, :t, 4)"),
                   {"t": task})  # fmt: skip
    export(tmp_path / "second")
    refused = apply(tmp_path / "second" / "to_v1.sql", supabase_v1)
    assert refused.returncode != 0
    assert 'violates check constraint "daily_focus_slot_check"' in refused.stderr
    assert v1_checksums(supabase_v1) == after


def test_the_export_to_v1_needs_the_restored_v1(live: str, tmp_path: Path) -> None:
    with lifeos_env.transaction() as cur:
        cur.execute("insert into public.domains (name) values ('made in v2')")
        cur.execute("drop schema v1 cascade")
    with pytest.raises(
        lifeos_env.MigrationError, match=r"^there is no restored v1 \(schema v1\) to compare live v2 with"
    ):
        export_changes.export_changes(load_settings(), tmp_path / "changes", to_v1=True)
    assert not (tmp_path / "changes").exists()
