"""The parallel run (issue 20): a re-migration carries the app's writes to live v2 forward (--carry-forward),
with what conflicts listed and kept (without the flag the publish stops: test_cutover's guard test); and a
round trip through v1 (export-changes --to-v1, applied to v1, migrated again) gives back the same v2."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql
from sqlalchemy import text
from test_migrate_cutover import app_engine

import generate_sample
import lifeos_env
import make_supabase_dump
import migrate
import publish
import report
from lifeos import carry_forward, cutover, grants, guard

pytestmark = pytest.mark.both_servers  # a Supabase-shaped v1, dumped by the server's pg_dump, migrated again


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
def app_role(sample_copy: str) -> Iterator[str]:
    """The app's login role on the migrated sample's live v2: no superuser, only what publish grants it."""
    role = f"lifeos_app_{uuid.uuid4().hex[:8]}"
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

    def app_writes_between_the_merge_and_the_publish(**options: object) -> list[str]:
        if not late:  # a write the merge did not see: the publish must not drop it
            with app_engine(app_role).begin() as conn:
                late.append(str(conn.execute(text("insert into domains (name) values ('late') returning id")).one()[0]))
        return real_publish(**options)

    monkeypatch.setattr(cutover, "publish", app_writes_between_the_merge_and_the_publish)
    assert migrate.main([*again, "--carry-forward"]) == 0
    assert live_row("domains", late[0])["name"] == "late"
    with lifeos_env.transaction() as cur:
        cur.execute("select result, detail from lifeos_migration.runs where command = 'publish' order by run_id")
        *_, (refused_result, refused_detail), (published_result, _) = cur.fetchall()
    assert (refused_result, published_result) == ("refused", "published")
    assert "after its writes were carried into the shadow" in refused_detail

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
        deleted_note: ("the app deleted the row v1 changed (body, updated_at)", None, live_row("notes", deleted_note)),
        garden: ("unique clash on context_types_value_key", app_versions[garden], None),
        clash: ("both sides changed title differently", app_versions[clash], live_row("tasks", clash)),
        orphan: ("its parent in tasks is not in the new v2 (v1 deleted it, or it is a conflict)",
                      app_versions[orphan], None),
    }  # fmt: skip
    written = json.loads((report.TARGET / "report.json").read_text())
    assert {c["row_id"]: (c["reason"], c["app_version"], c["v1_version"]) for c in written["conflicts"]} == conflicts
    listed = (report.TARGET / "report.md").read_text()
    assert f"- tasks {clash}: both sides changed title differently" in listed
    assert '"title": "the app\'s title"' in listed and '"title": "v1\'s title"' in listed
    assert written["passed"]

    # the app goes on writing as before, and the next publish guards its new writes again
    with app_engine(app_role).begin() as conn:
        conn.execute(text("update tasks set title = 'after the carry-forward' where id = :t"), {"t": renamed})
    with lifeos_env.transaction() as cur:
        assert guard.app_changes(cur, "public") == {"tasks": (1, 0)}


def migrated_columns() -> dict[str, dict[str, dict]]:
    """Per v2 table with v1 data: each row's id -> its columns that come from v1 (carry_forward.v1_held_columns),
    with times in UTC."""
    snapshot = {}
    with lifeos_env.transaction() as cur:
        cur.execute("set local timezone = 'UTC'")
        for table, columns in sorted(carry_forward.v1_held_columns().items()):
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
    assert json.loads((report.TARGET / "report.json").read_text())["conflicts"] == []
    assert live_row("tasks", edited_task)["energy_level"] == "low"  # a v2-only column the app changed
    assert live_row("tasks", str(task))["energy_level"] == "high"
