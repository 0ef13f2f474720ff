"""A real cut-over with one command (issue 14): known losses accepted on purpose, blobs not moved,
the app's own non-superuser role, the shrink guard, and the rehearsal that publishes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy
from conftest import build, run_dbt, worker_name
from psycopg2 import sql
from sqlalchemy import text
from test_validation import on_live

import generate_sample
import lifeos_env
import make_supabase_dump
import migrate
import publish
import restore_v1
from lifeos import catalog, cutover, guard
from lifeos.settings import load as load_settings


def live_tables() -> list[str]:
    with lifeos_env.transaction() as cur:
        return catalog.tables(cur, "public")


def last_build() -> tuple[str, str | None]:
    with lifeos_env.transaction() as cur:
        cur.execute("select result, detail from lifeos_migration.runs where full_build order by run_id desc limit 1")
        return cur.fetchone()


def last_publish() -> str:
    with lifeos_env.transaction() as cur:
        cur.execute("select result from lifeos_migration.runs where command = 'publish' order by run_id desc limit 1")
        return cur.fetchone()[0]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """scripts/migrate as a person runs it, on the test's database."""
    return subprocess.run(
        [sys.executable, "scripts/migrate.py", *args], cwd=lifeos_env.ROOT, env=os.environ.copy(),
        capture_output=True, text=True,
    )  # fmt: skip


@dataclass
class LossyDump:
    dump: Path
    bucket: Path
    reminder_id: str  # a reminder whose task was deleted: rejected (orphan_fk)
    file_id: str  # the files row whose blob is gone from the bucket
    object_key: str


@pytest.fixture
def lossy_dump(tmp_path: Path) -> LossyDump:
    """A Supabase-shaped dump with what real v1 data has: a reminder and a daily_focus row whose task
    was deleted (no FK there), an extra column, and its bucket without one files row's blob."""
    with lifeos_env.scratch_database("lifeos_supabase") as database:
        generator = make_supabase_dump.build_source(database, 1)
        conn = psycopg2.connect(dbname=database)
        with conn, conn.cursor() as cur:
            cur.execute(
                "alter table reminders drop constraint reminders_task_id_fkey;"
                " alter table daily_focus drop constraint daily_focus_task_id_fkey;"
                " alter table capture add column source_app text default 'ios';"
                " insert into daily_focus (focus_date, task_id, slot) values ('1999-01-01', gen_random_uuid(), 1);"
                " insert into reminders (task_id, remind_at) values (gen_random_uuid(), now()) returning id::text"
            )
            (reminder_id,) = cur.fetchone()
            cur.execute("select id::text, storage_path from files where storage_path !~ '[/:%]' order by id limit 1")
            file_id, key = cur.fetchone()
        conn.close()
        dump = make_supabase_dump.write_dumps(database, tmp_path, ["plain"])["plain"]
    bucket = tmp_path / "bucket"
    generate_sample.write_blobs(generator.blobs, bucket)
    (bucket / key).unlink()
    return LossyDump(dump, bucket, reminder_id, file_id, key)


def test_known_losses_stop_the_run_each_named_until_accepted_and_stay_accepted_in_dbt_test(
    fresh_database: str, lossy_dump: LossyDump
) -> None:
    source = ["--dump", str(lossy_dump.dump), "--files-from", str(lossy_dump.bucket)]
    refused = cli(*source)
    assert refused.returncode != 0
    named = [
        "reminders: 1 rejected by rule orphan_fk (scripts/migrate --accept-rejects accepts it)",
        f"files {lossy_dump.file_id}: blob {lossy_dump.object_key!r} missing at source"
        " (scripts/migrate --accept-rejects accepts it)",
    ]
    for loss in named:
        assert loss in refused.stdout.splitlines()
    assert live_tables() == []  # stopped before publishing

    accepted = cli(*source, "--accept-rejects")
    assert accepted.returncode == 0, accepted.stdout[-3000:]
    assert "published schema v2_shadow as live v2" in accepted.stdout
    losses = json.loads((load_settings().target / "report.json").read_text())["losses"]
    assert {"loss": named[0].split(" (")[0] + ", accepted", "accepted": True} in losses
    assert {"loss": named[1].split(" (")[0] + ", accepted", "accepted": True} in losses
    assert "missing at source, accepted" in (load_settings().target / "report.md").read_text()
    with lifeos_env.transaction() as cur:
        cur.execute("select original_filename from public.files where id = %s", (lossy_dump.file_id,))
        assert cur.fetchone() is not None  # the user's metadata of the lost blob migrated
        cur.execute("select rule from v2_work.migration_rejects where v1_id = %s", (lossy_dump.reminder_id,))
        assert cur.fetchone() == ("orphan_fk",)
        cur.execute("select status, file_id from lifeos_migration.file_manifest where status = 'present' limit 1")
        in_place, other_file = cur.fetchone()  # present: the refused run had copied it

    # a later `dbt test` on live v2: green with the accepted losses ...
    success, outcomes, log = run_dbt("test", *migrate.NO_UNIT_TESTS, "--vars", on_live())
    assert success, log
    assert outcomes["rejects_policy"] == outcomes["file_blobs_verified:files"] == "pass"
    # ... and red on a new one, and on a blob of the wrong size even when accepting
    new_reject = (
        "insert into v2_work.migration_rejects (v1_table, v1_id, action, rule, detail, v1_row)"
        " select 'domains', id, 'rejected', 'orphan_fk', 'new', to_jsonb(d) from v1.domains d limit 1"
    )
    other = f"lifeos_migration.file_manifest set {{}} where file_id = '{other_file}'"
    for tamper, undo, check, dbt_vars in [
        (new_reject, "delete from v2_work.migration_rejects where detail = 'new'", "rejects_policy", "{}"),
        (other.format("status = 'missing'"), other.format(f"status = '{in_place}'"), "file_blobs_verified:files", "{}"),
        (other.format("size_bytes = size_bytes + 1"), other.format("size_bytes = size_bytes - 1"),
         "file_blobs_verified:files", "{accept_rejects: true}"),
    ]:  # fmt: skip
        with lifeos_env.transaction() as cur:
            cur.execute(tamper if tamper.startswith("insert") else f"update {tamper}")
        try:
            _, outcomes, _ = run_dbt("test", "--select", "files migration_rejects", "--vars", on_live(dbt_vars))
        finally:
            with lifeos_env.transaction() as cur:
                cur.execute(undo if undo.startswith("delete") else f"update {undo}")
        assert outcomes[check] == "fail", tamper


def test_files_not_moved_stop_in_one_line_and_a_rehearsal_publishes_nothing_but_stays_publishable(
    fresh_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = ["--dump", str(restore_v1.SAMPLE_DUMP)]
    assert migrate.main([*dump, "--no-publish"]) == 1
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "migration failed" in line]
    assert "v1 has 20 files rows and no --files-from" in line and "--skip-files" in line
    with lifeos_env.transaction() as cur:
        assert catalog.tables(cur, "v2_shadow") == []  # stopped before the build

    assert migrate.main([*dump, "--skip-files", "--no-publish"]) == 0
    assert "rehearsal: nothing published" in capsys.readouterr().out
    assert live_tables() == []
    assert last_build() == ("built", None)
    reported = (load_settings().target / "report.md").read_text()
    assert "files step skipped (--skip-files): the blobs of 20 files rows were not moved" in reported
    assert "| files | 20 | 20 | 0 | 0 |" in reported and "| not checked |" in reported

    notes = cutover.publish(load_settings())  # the rehearsal's build, published later
    assert "domains" in live_tables()
    assert notes == [
        "no application role has access to live v2 (schema public): name the app's role with --app-role ROLE"
        " (or LIFEOS_APP_ROLE)"
    ]


@pytest.fixture
def app_role(request: pytest.FixtureRequest, rebuilt: str) -> Iterator[str]:
    """A real login role of the app: no superuser, no privileges of its own."""
    role = worker_name(request.config, "app")
    with lifeos_env.transaction() as cur:
        cur.execute(sql.SQL("create role {} login nosuperuser nocreatedb nocreaterole").format(sql.Identifier(role)))
    yield role
    with lifeos_env.transaction() as cur:
        cur.execute(sql.SQL("drop owned by {0}; drop role {0}").format(sql.Identifier(role)))


def app_engine(role: str) -> sqlalchemy.Engine:
    """The app's connection, as a FastAPI app with SQLAlchemy makes it."""
    url = sqlalchemy.URL.create(
        "postgresql+psycopg2", username=role, host=os.environ["PGHOST"], port=int(os.environ["PGPORT"]),
        database=os.environ["PGDATABASE"],
    )  # fmt: skip
    return sqlalchemy.create_engine(url, poolclass=sqlalchemy.NullPool)


def assert_app_works(role: str) -> None:
    """The app reads, writes and searches live v2 as `role`, in a transaction it rolls back."""
    with app_engine(role).connect() as conn:
        assert conn.execute(text("select current_user, usesuper from pg_user where usename = current_user")).one() == (
            role, False,
        )  # fmt: skip
        domain = conn.execute(text("select id from domains order by id limit 1")).scalar_one()
        note = conn.execute(
            text("insert into notes (domain_id, title, body) values (:d, 'Quittung Zürich', 'Steuer') returning id"),
            {"d": domain},
        ).scalar_one()
        conn.execute(text("update notes set body = 'Steuer 2026' where id = :n"), {"n": note})
        conn.execute(text("select refresh_search_index()"))
        found = conn.execute(
            text("select entity_id from search_index where document @@ search_query(:q) and is_active"),
            {"q": "zürich steuer"},
        ).scalars()
        assert list(found) == [note]
        conn.execute(text("delete from notes where id = :n"), {"n": note})
        conn.rollback()


@pytest.mark.both_servers  # roles, grants and pg_restore
def test_the_apps_role_reads_writes_and_searches_after_publish_republish_and_rollback(
    rebuilt: str, app_role: str
) -> None:
    assert publish.main(["publish", "--app-role", app_role]) == 0
    assert_app_works(app_role)
    with lifeos_env.transaction() as cur:  # default privileges: objects created later are the app's too
        cur.execute("create table public.made_later (x int); insert into public.made_later values (1)")
    with app_engine(app_role).connect() as conn:
        assert conn.execute(text("select x from made_later")).scalar_one() == 1
    with lifeos_env.transaction() as cur:
        cur.execute("drop table public.made_later")

    assert migrate.main(["--sample"]) == 0  # no role named: it carries over
    assert "no application role" not in (load_settings().target / "report.md").read_text()
    assert_app_works(app_role)
    cutover.rollback(load_settings())
    assert_app_works(app_role)


@pytest.fixture
def smaller_dump(tmp_path: Path) -> tuple[Path, Path]:
    """The sample's v1 dump without 10 of its 100 daily_focus rows (nothing refers to them), and its bucket."""
    with lifeos_env.scratch_database("lifeos_supabase") as database:
        generator = make_supabase_dump.build_source(database, 1)
        conn = psycopg2.connect(dbname=database)
        with conn, conn.cursor() as cur:
            cur.execute("delete from daily_focus where id in (select id from daily_focus order by id limit 10)")
        conn.close()
        dump = make_supabase_dump.write_dumps(database, tmp_path, ["plain"])["plain"]
    generate_sample.write_blobs(generator.blobs, tmp_path / "bucket")
    return dump, tmp_path / "bucket"


def test_a_shrinking_v2_is_refused_unless_allowed_and_reported(
    sample_copy: str, smaller_dump: tuple[Path, Path]
) -> None:
    before = live_tables()
    source = ["--dump", str(smaller_dump[0]), "--files-from", str(smaller_dump[1])]
    refused = cli(*source)
    assert refused.returncode == 1
    (line,) = [line for line in refused.stdout.splitlines() if "migration failed" in line]
    assert "the new v2 would shrink live v2 (schema public): " in line and "daily_focus 100 -> 90" in line
    assert "--allow-shrink" in line
    assert last_build()[0] == "built" and last_publish() == "refused"  # the build stays publishable
    assert live_tables() == before

    assert migrate.main([*source, "--allow-shrink"]) == 0
    assert "published although v2 shrank (--allow-shrink): " in (load_settings().target / "report.md").read_text()
    with lifeos_env.transaction() as cur:
        cur.execute("select count(*) from public.daily_focus")
        assert cur.fetchone() == (90,)


def app_catalog() -> dict[str, object]:
    """The app's own objects in live v2, and what they point at."""
    with lifeos_env.transaction() as cur:
        cur.execute(
            "select (select version_num from public.alembic_version),"
            " (select count(*) from public.task_comments),"
            " (select confrelid = 'public.tasks'::regclass from pg_constraint"
            "   where conrelid = 'public.task_comments'::regclass and contype = 'f'),"
            " (select bool_and(d.refobjid = 'public.tasks'::regclass) from pg_depend d"
            "   join pg_rewrite r on r.oid = d.objid where r.ev_class = 'public.open_tasks'::regclass"
            "   and d.refclassid = 'pg_class'::regclass and d.refobjid <> r.ev_class),"
            " (select count(*) from public.open_tasks) = (select count(*) from public.tasks where status = 'open'),"
            " public.task_total() = (select count(*) from public.tasks)"
        )
        alembic, comments, fk_live, view_live, view_rows, function_live = cur.fetchone()
    return {"alembic": alembic, "comments": comments, "fk": fk_live, "view": view_live, "view rows": view_rows,
            "function": function_live}  # fmt: skip


@pytest.mark.both_servers  # the server's catalog and deparse of the app's objects
def test_the_apps_own_objects_follow_live_v2_through_publish_and_rollback_or_publish_refuses_naming_them(
    rebuilt: str,
) -> None:
    with lifeos_env.transaction() as cur:  # what a FastAPI app with Alembic adds to its schema
        cur.execute(
            "create table public.alembic_version (version_num varchar(32) primary key);"
            " insert into public.alembic_version values ('3f2a1c9d');"
            " create table public.task_comments (id serial primary key,"
            "   task_id uuid not null references public.tasks (id) on delete cascade, body text);"
            " insert into public.task_comments (task_id, body) select id, 'mine' from public.tasks limit 2;"
            " create view public.open_tasks as select id, title from public.tasks where status = 'open';"
            " create function public.task_total() returns bigint language sql stable"
            "   begin atomic select count(*) from public.tasks; end"
        )
    expected = {"alembic": "3f2a1c9d", "comments": 2, "fk": True, "view": True, "view rows": True, "function": True}
    assert app_catalog() == expected

    cutover.publish(load_settings())  # the app's objects are no app changes: nothing to refuse
    assert app_catalog() == expected
    with lifeos_env.transaction() as cur:
        cur.execute("insert into public.task_comments (task_id, body) select id, 'later' from public.tasks limit 1")
    cutover.rollback(load_settings())
    assert app_catalog() == expected | {"comments": 3}

    with lifeos_env.transaction() as cur:
        cur.execute(
            "create materialized view public.task_stats as select count(*) from public.tasks;"
            " create type public.task_mood as enum ('calm', 'busy')"
        )
    build()
    with pytest.raises(guard.ChangesWouldBeLost) as refused:
        cutover.publish(load_settings())
    assert "cannot carry over: materialized view task_stats, type task_mood;" in str(refused.value)
    assert app_catalog() == expected | {"comments": 3}
