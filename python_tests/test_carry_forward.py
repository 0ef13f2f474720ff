"""The parallel run (issue 20): a re-migration carries the app's writes to live v2 forward (--carry-forward),
with what conflicts listed and kept (without the flag the publish stops: test_cutover's guard test); and a
round trip through v1 (export-changes --to-v1, applied to v1, migrated again) gives back the same v2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
from conftest import worker_name
from psycopg2 import sql
from sqlalchemy import text
from test_migrate_cutover import app_engine

import generate_sample
import lifeos_env
import make_supabase_dump
import migrate
import publish
from lifeos import carry_forward, catalog, cutover, grants, guard
from lifeos.project import V1_HELD, Project
from lifeos.settings import load as load_settings

# On every server (both_servers): the whole carry-forward through the app's role over TCP, and the round trip whose
# export the server's psql applies to a Supabase-shaped v1. The merge's other cases are the same SQL and Python on
# every server (its locks, its conflicts, a signal, the late writes): one server runs them.


@dataclass
class Source:
    """v1 as Supabase holds it, with the sample's rows (conftest's supabase_v1), and its bucket."""

    database: str
    bucket: Path

    def execute(self, statement: str, params: object = None) -> list[tuple]:
        """One statement on v1, as v1's app would run it; its rows."""
        conn = psycopg2.connect(dbname=self.database)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def dump(self, folder: Path) -> Path:
        """pg_dump of v1 as it is now."""
        return make_supabase_dump.write_dumps(self.database, folder, ["plain"])["plain"]


@pytest.fixture
def source(supabase_v1: str, tmp_path: Path) -> Source:
    return Source(supabase_v1, generate_sample.write_sample_blobs(1, tmp_path / "bucket"))


@pytest.fixture
def app_role(request: pytest.FixtureRequest, sample_copy: str) -> Iterator[str]:
    """The app's login role on the migrated sample's live v2: no superuser, only what publish grants it."""
    role = worker_name(request.config, "app")
    with lifeos_env.transaction() as cur:
        cur.execute(sql.SQL("create role {} login nosuperuser nocreatedb nocreaterole").format(sql.Identifier(role)))
        grants.grant_app_role(cur, "public", role)
    yield role
    with lifeos_env.transaction() as cur:
        cur.execute(sql.SQL("drop owned by {0}; drop role {0}").format(sql.Identifier(role)))


def live_row(table: str, row_id: str) -> dict | None:
    """A row of live v2 as jsonb, its times in UTC as the conflicts table keeps them."""
    with lifeos_env.transaction() as cur:
        cur.execute("set local timezone = 'UTC'")
        cur.execute(sql.SQL("select to_jsonb(t) from {} t where id = %s").format(sql.Identifier(table)), (row_id,))
        found = cur.fetchone()
    return found and found[0]


def some_ids(query: str) -> list[str]:
    with lifeos_env.transaction() as cur:
        cur.execute(query)
        return [str(row_id) for (row_id,) in cur.fetchall()]


@pytest.mark.both_servers  # the app's role over TCP, the server's pg_dump of v1
def test_carry_forward_keeps_every_app_write_and_v1_change_and_lists_each_conflict_with_both_versions(
    sample_copy: str, app_role: str, source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaves = some_ids(  # tasks nothing refers to, in v1 as in v2
        "select id from tasks t where not exists (select from tasks c where c.parent_id = t.id)"
        " and not exists (select from daily_focus f where f.task_id = t.id)"
        " and not exists (select from notes n where n.task_id = t.id)"
        " and not exists (select from files f where f.task_id = t.id)"
        " and not exists (select from capture c where c.task_id = t.id)"
        " and not exists (select from bookmarks b where b.task_id = t.id)"
        " and status = 'open' order by id limit 5"
    )
    renamed, both, clash, gone, untouched = leaves
    (project,) = some_ids("select id from projects order by id limit 1")
    (focus,) = some_ids("select id from daily_focus order by id limit 1")
    note, deleted_note = some_ids(
        "select id from notes n where not exists (select from files f where f.note_id = n.id) order by id limit 2"
    )

    with app_engine(app_role).begin() as conn:  # the app, as its role, in v2
        domain = conn.execute(text("insert into domains (name) values ('Made in v2') returning id")).scalar_one()
        new_project = conn.execute(
            text("insert into projects (domain_id, name) values (:d, 'v2 project') returning id"), {"d": domain}
        ).scalar_one()
        new_task = conn.execute(
            text("insert into tasks (domain_id, project_id, title) values (:d, :p, 'v2 task') returning id"),
            {"d": domain, "p": new_project},
        ).scalar_one()
        old_project_task = conn.execute(
            text(
                "insert into tasks (domain_id, project_id, title) select domain_id, id, 'under a v1 project'"
                " from projects where id = :p returning id"
            ),
            {"p": project},
        ).scalar_one()
        orphan = conn.execute(
            text(
                "insert into tasks (domain_id, parent_id, title) select domain_id, id, 'subtask of a task v1 deletes'"
                " from tasks where id = :t returning id"
            ),
            {"t": gone},
        ).scalar_one()
        conn.execute(text("update tasks set title = 'renamed in v2' where id = :t"), {"t": renamed})
        conn.execute(text("update tasks set status = 'in_progress' where id = :t"), {"t": both})
        conn.execute(text("update tasks set title = 'the app''s title' where id = :t"), {"t": clash})
        conn.execute(text("delete from daily_focus where id = :f"), {"f": focus})
        conn.execute(text("delete from notes where id = :n"), {"n": deleted_note})
        garden = conn.execute(
            text("insert into context_types (value, label) values ('garden', 'Garden') returning id")
        ).scalar_one()
    orphan, garden = str(orphan), str(garden)
    app_versions = {row_id: live_row("tasks", row_id) for row_id in (clash, orphan)}
    app_versions[garden] = live_row("context_types", garden)

    # v1's app, meanwhile
    source.execute("update tasks set priority = 1, updated_at = now() where id = %s", (both,))
    source.execute("update tasks set title = 'v1''s title', updated_at = now() where id = %s", (clash,))
    source.execute("delete from tasks where id = %s", (gone,))
    source.execute("update notes set body = 'edited in v1', updated_at = now() where id = %s", (note,))
    source.execute("update notes set body = 'the app deleted it', updated_at = now() where id = %s", (deleted_note,))
    source.execute("insert into context_types (value, label) values ('garden', 'Garden in v1')")
    ((v1_domain,),) = source.execute("insert into domains (name) values ('Made in v1') returning id::text")
    dump = source.dump(tmp_path / "dump")
    again = ["--dump", str(dump), "--files-from", str(source.bucket), "--app-role", app_role]

    late: list[str] = []
    real_publish = cutover.publish

    def app_writes_between_the_merge_and_the_publish(*args: object, **options: object) -> list[str]:
        if not late:  # a write the merge did not see: the publish must not drop it
            with app_engine(app_role).begin() as conn:
                late.append(str(conn.execute(text("insert into domains (name) values ('late') returning id")).one()[0]))
        return real_publish(*args, **options)

    monkeypatch.setattr(cutover, "publish", app_writes_between_the_merge_and_the_publish)
    assert migrate.main([*again, "--carry-forward"]) == 0
    assert live_row("domains", late[0])["name"] == "late"
    with lifeos_env.transaction() as cur:  # merged under the publish's own lock: one try, published
        cur.execute("select result from lifeos_migration.runs where command = 'publish' order by run_id")
        assert cur.fetchall()[-2:] == [("published",), ("published",)]  # the sample's, and this one

    # every write of the app's that conflicts with none of v1's is in the new live v2
    assert live_row("domains", str(domain))["name"] == "Made in v2"
    assert live_row("projects", str(new_project))["name"] == "v2 project"
    assert live_row("tasks", str(new_task))["project_id"] == str(new_project)
    assert live_row("tasks", str(old_project_task))["project_id"] == project
    assert live_row("tasks", renamed)["title"] == "renamed in v2"
    assert live_row("daily_focus", focus) is None
    # and every change of v1's, both in one row where they changed different columns
    assert (live_row("tasks", both)["status"], live_row("tasks", both)["priority"]) == ("in_progress", 1)
    assert live_row("tasks", gone) is None
    assert live_row("notes", note)["body"] == "edited in v1"
    assert live_row("domains", v1_domain)["name"] == "Made in v1"
    assert live_row("tasks", untouched) is not None
    # the conflicts stay as v1 has them, and the app's versions are kept whole in the conflicts table
    assert live_row("tasks", clash)["title"] == "v1's title"
    assert live_row("tasks", orphan) is None
    assert live_row("notes", deleted_note)["body"] == "the app deleted it"
    assert live_row("context_types", garden) is None
    with lifeos_env.transaction() as cur:
        cur.execute(
            "select row_id, reason, app_version, v1_version from lifeos_migration.conflicts"
            " where build_run_id = (select max(run_id) from lifeos_migration.runs where full_build) order by row_id"
        )
        conflicts = {row_id: (reason, mine, theirs) for row_id, reason, mine, theirs in cur.fetchall()}
    assert conflicts == {
        deleted_note: ("the app deleted the row v1 changed (body)", None, live_row("notes", deleted_note)),
        garden: ("unique clash on context_types_value_key", app_versions[garden], None),
        clash: ("both sides changed title differently", app_versions[clash], live_row("tasks", clash)),
        orphan: ("its parent in tasks is not in the new v2 (v1 deleted it, or it is a conflict)",
                      app_versions[orphan], None),
    }  # fmt: skip
    written = json.loads((load_settings().target / "report.json").read_text())
    assert {c["row_id"]: (c["reason"], c["app_version"], c["v1_version"]) for c in written["conflicts"]} == conflicts
    listed = (load_settings().target / "report.md").read_text()
    assert f"- tasks {clash}: both sides changed title differently" in listed
    assert '"title": "the app\'s title"' in listed and '"title": "v1\'s title"' in listed
    assert written["passed"]

    # the app goes on writing as before, and the next publish guards its new writes again
    with app_engine(app_role).begin() as conn:
        conn.execute(text("update tasks set title = 'after the carry-forward' where id = :t"), {"t": renamed})
    with lifeos_env.transaction() as cur:
        assert guard.app_changes(cur, load_settings(), "public") == {"tasks": (1, 0)}


def migrated_columns() -> dict[str, dict[str, dict]]:
    """Per v2 table with v1 data: each row's id -> its columns that come from v1 (origin copy or rename in the
    marts' YAML), with times in UTC."""
    project = Project.from_manifest(migrate.dbt("parse").result)
    snapshot = {}
    with lifeos_env.transaction() as cur:
        cur.execute("set local timezone = 'UTC'")
        for table in sorted(project.origins):
            columns = project.columns(table, *V1_HELD) - {"id"}
            if not columns or table not in catalog.tables(cur, "public"):
                continue
            cur.execute(
                sql.SQL("select id::text, jsonb_build_object({}) from {}").format(
                    sql.SQL(", ").join(
                        sql.SQL("{}, {}").format(sql.Literal(c), sql.Identifier(c)) for c in sorted(columns)
                    ),
                    sql.Identifier(table),
                )
            )
            snapshot[table] = dict(cur.fetchall())
    return snapshot


@pytest.mark.both_servers  # the export applied to a Supabase-shaped v1 by the server's psql
def test_a_round_trip_through_v1_gives_back_the_same_v2_with_no_conflicts(
    sample_copy: str, app_role: str, source: Source, tmp_path: Path
) -> None:
    (edited_task,) = some_ids("select id from tasks where parent_id is null order by id limit 1")
    (edited_project,) = some_ids("select id from projects order by id limit 1")
    (gone_focus,) = some_ids("select id from daily_focus order by id limit 1")
    (gone_bookmark,) = some_ids("select id from bookmarks order by id limit 1")
    with app_engine(app_role).begin() as conn:  # the app creates, updates and deletes in v2
        domain = conn.execute(text("insert into domains (name) values ('Round trip') returning id")).scalar_one()
        project = conn.execute(
            text("insert into projects (domain_id, name) values (:d, 'There and back') returning id"), {"d": domain}
        ).scalar_one()
        task = conn.execute(
            text(
                "insert into tasks (domain_id, project_id, title, energy_level) values (:d, :p, 'Go', 'high')"
                " returning id"
            ),
            {"d": domain, "p": project},
        ).scalar_one()
        conn.execute(
            text("insert into tasks (domain_id, parent_id, title) values (:d, :t, 'and come back')"),
            {"d": domain, "t": task},
        )
        conn.execute(text("insert into notes (task_id, title, body) values (:t, 'Log', 'it''s a trip')"), {"t": task})
        conn.execute(
            text("update tasks set title = 'Retitled in v2', energy_level = 'low' where id = :t"), {"t": edited_task}
        )
        conn.execute(text("update projects set name = 'Renamed in v2' where id = :p"), {"p": edited_project})
        conn.execute(text("delete from daily_focus where id = :f"), {"f": gone_focus})
        conn.execute(text("delete from bookmarks where id = :b"), {"b": gone_bookmark})

    out = tmp_path / "to_v1"
    assert publish.main(["export-changes", "--to-v1", "--out", str(out)]) == 0
    before = migrated_columns()  # v2 as the export left it (its dbt run wrote the manifest this reads)
    applied = subprocess.run(  # as a person applies it to v1
        [lifeos_env.pg_client("psql"), "-X", "-q", "-d", source.database, "-f", str(out / "to_v1.sql")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    dump = source.dump(tmp_path / "dump")
    again = ["--dump", str(dump), "--files-from", str(source.bucket), "--app-role", app_role, "--carry-forward"]
    assert migrate.main(again) == 0

    assert migrated_columns() == before
    with lifeos_env.transaction() as cur:
        cur.execute(
            "select count(*) from lifeos_migration.conflicts"
            " where build_run_id = (select max(run_id) from lifeos_migration.runs where full_build)"
        )
        assert cur.fetchone() == (0,)
    assert json.loads((load_settings().target / "report.json").read_text())["conflicts"] == []
    assert live_row("tasks", edited_task)["energy_level"] == "low"  # a v2-only column the app changed
    assert live_row("tasks", str(task))["energy_level"] == "high"


# Issue 25: the merge is a three-way merge from state (base: the build v1 alone produced for live v2), so it can
# be repeated, derived columns are no one's change, and whatever it cannot merge is a listed conflict.

LEAF = (  # a task nothing refers to, in v1 as in v2
    "not exists (select from tasks c where c.parent_id = t.id)"
    " and not exists (select from daily_focus f where f.task_id = t.id)"
    " and not exists (select from notes n where n.task_id = t.id)"
    " and not exists (select from files f where f.task_id = t.id)"
    " and not exists (select from capture c where c.task_id = t.id)"
    " and not exists (select from bookmarks b where b.task_id = t.id)"
    " and not exists (select from reminders r where r.entity_id = t.id)"
)


def carry(source: Source, tmp_path: Path, app_role: str, *options: str) -> int:
    """scripts/migrate --carry-forward from a fresh dump of v1 as it is now."""
    dump = source.dump(tmp_path / f"dump_{uuid.uuid4().hex[:6]}")
    return migrate.main(
        ["--dump", str(dump), "--files-from", str(source.bucket), "--app-role", app_role, "--carry-forward", *options]
    )


def conflicts() -> dict[str, tuple[str, dict | None, dict | None]]:
    """Every conflict recorded: row id -> reason, app's version, v1's version."""
    with lifeos_env.transaction() as cur:
        cur.execute("select row_id, reason, app_version, v1_version from lifeos_migration.conflicts")
        return {row_id: (reason, mine, theirs) for row_id, reason, mine, theirs in cur.fetchall()}


def live_v2() -> dict[str, dict[str, dict]]:
    """Every row of live v2 but the derived search_index, by table and id, times in UTC."""
    with lifeos_env.transaction() as cur:
        cur.execute("set local timezone = 'UTC'")
        snapshot = {}
        for table in catalog.tables(cur, "public"):
            if table != "search_index":
                cur.execute(sql.SQL("select id::text, to_jsonb(t) from {} t").format(sql.Identifier(table)))
                snapshot[table] = dict(cur.fetchall())
    return snapshot


def test_a_second_carry_forward_keeps_what_the_first_carried_and_the_same_dump_again_changes_nothing(
    sample_copy: str, app_role: str, source: Source, tmp_path: Path
) -> None:
    """Case 1: the base is the build v1 produced, not "the row as published", so carried writes stay the app's."""
    (renamed,) = some_ids(f"select id from tasks t where {LEAF} and parent_id is null order by id limit 1")
    with app_engine(app_role).begin() as conn:
        new_task = conn.execute(
            text(
                "insert into tasks (domain_id, title) select domain_id, 'made in v2' from tasks where id = :t"
                " returning id"
            ),
            {"t": renamed},
        ).scalar_one()
        conn.execute(text("update tasks set title = 'renamed in v2' where id = :t"), {"t": renamed})
    assert carry(source, tmp_path, app_role) == 0
    first = live_v2()
    assert first["tasks"][str(new_task)]["title"] == "made in v2"
    assert first["tasks"][renamed]["title"] == "renamed in v2"
    for _again in range(2):  # a fresh dump of the same v1, twice; --allow-shrink: no guard stands in the way
        assert carry(source, tmp_path, app_role, "--allow-shrink") == 0
        assert live_v2() == first
    assert conflicts() == {}


def test_v1_renumbering_a_derived_column_is_no_change_and_undoes_no_delete_of_the_app(
    sample_copy: str, app_role: str, source: Source, tmp_path: Path
) -> None:
    """Case 3: v1 deletes the first task of a project (the build renumbers every later sibling's sort_order)
    and adds an older domain (context_types' times date from the first domain): the app's delete of a sibling
    and of a context type stand, and its reorder of another sibling is kept."""
    (project,) = some_ids(
        "select project_id from tasks where parent_id is null and project_id is not null"
        " group by 1 order by count(*) desc limit 1"
    )
    first, *_ = some_ids(
        f"select id from tasks where project_id = '{project}' and parent_id is null order by sort_order"
    )
    gone, moved = some_ids(
        f"select id from tasks t where project_id = '{project}' and parent_id is null and id <> '{first}' and {LEAF}"
        " order by sort_order desc limit 2"
    )
    with app_engine(app_role).begin() as conn:
        conn.execute(text("delete from tasks where id = :t"), {"t": gone})
        conn.execute(text("update tasks set sort_order = 999 where id = :t"), {"t": moved})
        conn.execute(text("delete from context_types where value = 'errands'"))
    source.execute("delete from tasks where id = %s", (first,))
    source.execute("insert into domains (name, created_at) values ('Older', '2001-01-01')")
    assert carry(source, tmp_path, app_role, "--allow-shrink") == 0  # the shrink guard counts the app's delete
    assert live_row("tasks", first) is None
    assert live_row("tasks", gone) is None
    assert live_row("tasks", moved)["sort_order"] == 999
    assert some_ids("select id from context_types where value = 'errands'") == []
    assert some_ids("select distinct created_at::text from context_types") == ["2001-01-01 00:00:00+00"]
    assert conflicts() == {}


def test_what_the_merge_cannot_carry_is_a_listed_conflict_and_the_build_passes(
    sample_copy: str, app_role: str, source: Source, tmp_path: Path
) -> None:
    """Case 4: a reminder on a task v1 deleted, a task deleted that v1 gave a reminder, a cycle closed by both
    sides, a unique clash of two updated rows, and a NOT NULL column only the new v2 has."""
    reminded, deleted, parent, child = some_ids(
        f"select id from tasks t where {LEAF} and parent_id is null order by id limit 4"
    )
    with lifeos_env.transaction() as cur:  # live v2 of a version without domains.is_active (not null default true)
        cur.execute("alter table domains drop column is_active cascade")  # and what reads it (search refresh)
    with app_engine(app_role).begin() as conn:
        reminder = conn.execute(
            text("insert into reminders (entity_type, entity_id, remind_at) values ('task', :t, now()) returning id"),
            {"t": reminded},
        ).scalar_one()
        conn.execute(text("delete from tasks where id = :t"), {"t": deleted})
        conn.execute(text("update tasks set parent_id = :p where id = :c"), {"p": parent, "c": child})
        conn.execute(text("update context_types set value = 'focus' where value = 'admin'"))
        domain = conn.execute(text("insert into domains (name) values ('active?') returning id")).scalar_one()
    reminder, domain = str(reminder), str(domain)
    app_versions = {"reminder": live_row("reminders", reminder), "child": live_row("tasks", child)}
    (admin,) = some_ids("select id from context_types where value = 'focus'")
    app_versions["admin"] = live_row("context_types", admin)
    source.execute("delete from tasks where id = %s", (reminded,))
    source.execute("insert into reminders (task_id, remind_at) values (%s, now())", (deleted,))
    source.execute("update tasks set parent_id = %s where id = %s", (child, parent))
    source.execute("update context_types set value = 'focus' where value = 'calls'")

    assert carry(source, tmp_path, app_role) == 0
    assert live_row("domains", domain)["is_active"] is True  # the column's default
    assert live_row("reminders", reminder) is None
    assert live_row("tasks", deleted) is not None
    assert (live_row("tasks", parent)["parent_id"], live_row("tasks", child)["parent_id"]) == (child, None)
    assert (live_row("context_types", admin)["value"]) == "admin"
    found = conflicts()
    assert {row_id: reason for row_id, (reason, _, _) in found.items()} == {
        reminder: "the row its entity_id names is not in the new v2 (v1 deleted it)",
        deleted: "rows of reminders in the new v2 refer to the row the app deleted",
        child: "it would close a cycle of parent_id with v1's rows",
        admin: "unique clash on context_types_value_key",
    }
    assert found[reminder][1:] == (app_versions["reminder"], None)
    assert found[deleted][1:] == (None, live_row("tasks", deleted))
    assert found[child][1:] == (app_versions["child"], live_row("tasks", child))
    assert found[admin][1:] == (app_versions["admin"], live_row("context_types", admin))

    # resolving: the app's version of the delete deletes the task (and, as the app's delete does, its reminder)
    with lifeos_env.transaction() as cur:
        cur.execute("select row_id, conflict_id from lifeos_migration.conflicts")
        ids = dict(cur.fetchall())
    deleted_conflict, admin_conflict = ids[deleted], ids[admin]
    assert publish.main(["resolve", str(deleted_conflict), "--take", "app"]) == 0
    assert live_row("tasks", deleted) is None
    assert publish.main(["resolve", str(deleted_conflict), "--take", "v1"]) == 1  # resolved already
    assert publish.main(["resolve", str(admin_conflict), "--take", "app"]) == 1  # 'focus' is calls' now: refused
    assert live_row("context_types", admin)["value"] == "admin"
    with lifeos_env.transaction() as cur:
        recorded = guard.app_changes(
            cur, load_settings(), "public"
        )  # as the app's writes are: the next carry-forward keeps them
    assert (recorded["tasks"], recorded["reminders"]) == ((0, 1), (0, 1))


def test_the_merge_takes_no_lock_the_app_waits_for(
    sample_copy: str, app_role: str, source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 6: with a transaction of the app's open (its write recorded in the change log), the merge runs
    (no DDL on the log: a lock the app's writes would queue behind); here any lock the run waited for over 3 s
    would fail it."""
    monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=3s")
    engine = app_engine(app_role)
    with engine.begin() as conn:
        conn.execute(text("insert into domains (name) values ('before')"))
    app = engine.connect()
    open_write = app.begin()
    app.execute(text("insert into domains (name) values ('open during the merge')"))
    real_publish = cutover.publish

    def the_app_commits_then_publish(*args: object, **options: object) -> list[str]:
        open_write.commit()
        return real_publish(*args, **options)

    monkeypatch.setattr(cutover, "publish", the_app_commits_then_publish)
    try:
        assert carry(source, tmp_path, app_role) == 0
    finally:
        app.close()
    assert set(some_ids("select name from domains where name in ('before', 'open during the merge')")) == {
        "before",
        "open during the merge",
    }


def test_a_signal_during_the_merge_stops_the_run_even_when_psycopg2_loses_it(
    sample_copy: str, app_role: str, source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 7: SIGTERM arrives during a merge statement whose server sends a NOTICE (psycopg2 then drops the
    exception the signal raised): the run still stops, recorded interrupted, and nothing is published."""
    monkeypatch.setattr(lifeos_env, "_stopped", [])
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    with app_engine(app_role).begin() as conn:
        conn.execute(text("insert into domains (name) values ('carried?')"))
    real_classify = carry_forward.Pass.classify

    def classify_with_a_notice(self: carry_forward.Pass, *args: object) -> None:
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
        self.cur.execute("do $$ begin perform pg_sleep(1); raise notice 'a notice'; end $$")
        real_classify(self, *args)

    monkeypatch.setattr(carry_forward.Pass, "classify", classify_with_a_notice)
    try:
        assert carry(source, tmp_path, app_role) == 1
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    with lifeos_env.transaction() as cur:
        cur.execute("select command, result from lifeos_migration.runs order by run_id desc limit 1")
        assert cur.fetchone() == ("build", "interrupted")
        cur.execute("select count(*) from lifeos_migration.runs where command = 'publish'")
        assert cur.fetchone() == (1,)  # the sample's only
    assert some_ids("select name from domains where name = 'carried?'") == ["carried?"]  # live v2 as it was


@pytest.mark.parametrize("before", ["nothing", "a write"])
def test_writes_after_the_merge_are_merged_under_the_publishs_lock_in_one_go(
    sample_copy: str, app_role: str, source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, before: str
) -> None:
    """Cases 10 and 11: the writes that arrive between the merge and the publish (an insert, an update of a row
    the merge carried, a delete; also when the merge found nothing to carry) are merged inside the publish's
    own lock: one publish, no refusal, no second merge and test."""
    (edited,) = some_ids(f"select id from tasks t where {LEAF} order by id limit 1")
    (removed,) = some_ids(f"select id from tasks t where {LEAF} order by id desc limit 1")
    if before == "a write":
        with app_engine(app_role).begin() as conn:
            conn.execute(text("update tasks set title = 'first' where id = :t"), {"t": edited})
    real_publish = cutover.publish
    late: list[str] = []

    def the_app_writes_then_publish(*args: object, **options: object) -> list[str]:
        with app_engine(app_role).begin() as conn:
            late.append(str(conn.execute(text("insert into domains (name) values ('late') returning id")).one()[0]))
            conn.execute(text("update tasks set title = 'late title' where id = :t"), {"t": edited})
            conn.execute(text("delete from tasks where id = :t"), {"t": removed})
        return real_publish(*args, **options)

    monkeypatch.setattr(cutover, "publish", the_app_writes_then_publish)
    assert carry(source, tmp_path, app_role) == 0
    assert live_row("domains", late[0])["name"] == "late"
    assert live_row("tasks", edited)["title"] == "late title"
    assert live_row("tasks", removed) is None
    with lifeos_env.transaction() as cur:
        cur.execute("select result from lifeos_migration.runs where command = 'publish' order by run_id")
        assert cur.fetchall() == [("published",), ("published",)]
        assert guard.app_changes(cur, load_settings(), "public") == {}
    assert conflicts() == {}
