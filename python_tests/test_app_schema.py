"""Live v2 belongs to the app after the cut-over (issue 27): the schema changes its migrations make (as the
schema's owner, a non-superuser, the way Alembic runs them) survive publish, rollback and clean-up; the
backups stay the operator's; restore-backup takes a new database's name only; the shrink guard counts what
live v2 holds; and `dbt test` validates where v2 is.

Every step runs as a person runs it: scripts/migrate and scripts/publish as commands, the app's writes as
its own role through SQLAlchemy, the checks as SQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy
from conftest import build, run_dbt, worker_name
from psycopg2 import sql
from sqlalchemy import text

import lifeos_env

# On every server (both_servers): what the server's catalog, deparse, pg_dump and pg_restore decide. The shrink
# guard's counts and dbt's choice of schema and verdicts are the same SQL on every server: one server runs them.

# Objects outside the kept schemas that depend on an object inside one: what `drop schema ... cascade` of a
# backup would cut. pg_describe_object qualifies a name whose schema is not on the search_path, as a kept
# schema never is.
ON_KEPT_SCHEMAS = """
select distinct pg_describe_object(d.classid, d.objid, d.objsubid) || ' -> '
    || pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid)
from pg_depend d
where d.deptype <> 'i' and pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) ~ 'v2_(backup|rolledback)_'
    and pg_describe_object(d.classid, d.objid, d.objsubid) !~ 'v2_(backup|rolledback)_'
order by 1
"""


def command(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """scripts/<script> as an operator runs it, on the test's database, without a terminal."""
    return subprocess.run(
        [str(lifeos_env.ROOT / "scripts" / script), *args], cwd=lifeos_env.ROOT, env=os.environ.copy(),
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
    )  # fmt: skip


def succeeds(script: str, *args: str) -> str:
    done = command(script, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def refused(script: str, *args: str) -> str:
    """The one line a refused command printed (exit 1, no traceback)."""
    done = command(script, *args)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line for line in done.stdout.strip().splitlines() if "failed" in line]
    assert len(lines) == 1, done.stdout
    return lines[0]


def query(statement: str, params: object = None) -> list[tuple]:
    with lifeos_env.transaction() as cur:
        cur.execute(statement, params)
        return cur.fetchall()


@dataclass
class App:
    """The app's two roles: `owner` owns live v2 and runs the migrations' DDL, `role` reads and writes rows."""

    owner: str
    role: str

    def engine(self, user: str) -> sqlalchemy.Engine:
        url = sqlalchemy.URL.create(
            "postgresql+psycopg2", username=user, host=os.environ["PGHOST"], port=int(os.environ["PGPORT"]),
            database=os.environ["PGDATABASE"],
        )  # fmt: skip
        return sqlalchemy.create_engine(url, poolclass=sqlalchemy.NullPool)

    def migrate(self, ddl: str) -> None:
        """An Alembic migration: one transaction of DDL as the schema's owner."""
        with self.engine(self.owner).begin() as conn:
            conn.execute(text(ddl))

    def write(self, statement: str, params: dict | None = None) -> list[tuple]:
        """One statement of the app's, as its role; its rows."""
        with self.engine(self.role).begin() as conn:
            done = conn.execute(text(statement), params or {})
            return [tuple(row) for row in done] if done.returns_rows else []


@pytest.fixture
def app(request: pytest.FixtureRequest, rebuilt: str) -> Iterator[App]:
    """conftest's rebuilt sample (live v2 published, a green build in the shadow), handed over to the app:
    its owner role owns the live schema and everything in it, its role gets what publish grants an app role."""
    roles = App(worker_name(request.config, "owner"), worker_name(request.config, "app"))
    with lifeos_env.transaction() as cur:
        for role in (roles.owner, roles.role):
            create = sql.SQL("create role {} login nosuperuser nocreatedb nocreaterole")
            cur.execute(create.format(sql.Identifier(role)))
        cur.execute(sql.SQL("alter schema public owner to {}").format(sql.Identifier(roles.owner)))
        cur.execute(
            "select format('alter %%s %%s owner to %%I', case c.relkind when 'S' then 'sequence' when 'v' then 'view'"
            " else 'table' end, c.oid::regclass, %s) from pg_class c"
            " where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'S')"
            " and not exists (select from pg_depend d where d.objid = c.oid and d.deptype in ('a', 'i'))"
            " union all select format('alter routine %%s owner to %%I', p.oid::regprocedure, %s) from pg_proc p"
            " where p.pronamespace = 'public'::regnamespace",
            (roles.owner, roles.owner),
        )
        for (statement,) in cur.fetchall():
            cur.execute(statement)
        cur.execute(
            sql.SQL(
                "grant usage on schema public to {role}; grant select, insert, update, delete on all tables in"
                " schema public to {role}; grant usage, select on all sequences in schema public to {role};"
                " grant execute on all functions in schema public to {role}"
            ).format(role=sql.Identifier(roles.role))
        )
    yield roles
    with lifeos_env.transaction() as cur:
        for role in (roles.owner, roles.role):
            cur.execute(sql.SQL("drop owned by {0}; drop role {0}").format(sql.Identifier(role)))


@pytest.mark.both_servers  # the catalog and deparse of the app's columns and constraints
def test_columns_constraints_and_indexes_the_app_added_to_v2_tables_survive_a_carry_forward(app: App) -> None:
    """Issue 27, case 1: a column with its CHECK (and an index) the app's migration added to tasks, and the
    values the app set in it, are in the new live v2 after `scripts/migrate --carry-forward`."""
    app.migrate(
        "alter table tasks add column app_pinned boolean not null default false,"
        " add column app_priority integer constraint tasks_app_priority_range check (app_priority between 0 and 9),"
        " add column app_number serial;"
        " create index tasks_app_pinned_idx on tasks (app_pinned) where app_pinned"
    )
    numbers = query("select id::text, app_number from public.tasks order by id")
    pinned = app.write(
        "update tasks set app_pinned = true, app_priority = 7"
        " where id in (select id from tasks order by id limit 7) returning id::text"
    )
    assert len(pinned) == 7
    succeeds("migrate", "--sample", "--carry-forward", "--app-role", app.role)
    assert query("select id::text from public.tasks where app_pinned and app_priority = 7 order by 1") == sorted(pinned)
    assert query("select count(*) from public.tasks where not app_pinned and app_priority is null")[0][0] > 0
    assert query(
        "select conname, pg_get_constraintdef(oid) from pg_constraint where conrelid = 'public.tasks'::regclass"
        " and conname = 'tasks_app_priority_range'"
    ) == [("tasks_app_priority_range", "CHECK (((app_priority >= 0) AND (app_priority <= 9)))")]
    partial_index = (
        "select indexdef ~ 'WHERE app_pinned' from pg_indexes where schemaname = 'public' and indexname = %s"
    )
    assert query(partial_index, ("tasks_app_pinned_idx",)) == [(True,)]
    with pytest.raises(sqlalchemy.exc.IntegrityError, match="tasks_app_priority_range"):
        app.write("update tasks set app_priority = 10 where id = :id", {"id": pinned[0][0]})
    assert query("select id::text, app_number from public.tasks where app_number is not null order by id") == numbers
    assert query("select pg_get_serial_sequence('public.tasks', 'app_number'), nextval('public.tasks_app_number_seq')")[
        0
    ] == ("public.tasks_app_number_seq", len(numbers) + 1)
    assert query(ON_KEPT_SCHEMAS) == []
    app.migrate("alter table tasks add column app_later text")  # the owner still owns live v2


APP_OBJECTS = """
create function app_label() returns text language sql immutable as $$ select 'from the app' $$;
create sequence app_note_numbers;
create table app_notes (
    id bigint primary key default nextval('app_note_numbers'),
    task_id uuid references tasks (id) on delete cascade,
    label text default app_label(),
    touched integer not null default 0
);
create function app_touch() returns trigger language plpgsql as $$
    begin new.touched := new.touched + 1; return new; end $$;
create trigger app_notes_touch before insert or update on app_notes for each row execute function app_touch();
alter table tasks add column app_label text default app_label();
create function app_task_label() returns trigger language plpgsql as $$
    begin new.app_label := upper(app_label()); return new; end $$;
create trigger tasks_app_label before update on tasks for each row execute function app_task_label();
create view app_labelled_tasks as select id, app_label from tasks where app_label is not null;
alter table app_notes enable row level security;
create policy app_notes_labelled on app_notes using (label = app_label());
"""


@pytest.mark.both_servers  # the server's deparse of the app's objects
def test_the_apps_triggers_defaults_functions_views_and_policies_outlive_publish_and_cleanup(app: App) -> None:
    """Issue 27, case 2: after a publish nothing live depends on a backup schema (pg_depend), so clean-up's
    drop of the backups cuts nothing of the app's: its defaults and triggers go on calling its functions, after
    a second publish too."""
    app.migrate(APP_OBJECTS)
    app.migrate(
        f"grant select, insert, update on app_notes to {app.role}; grant usage on sequence app_note_numbers to"
        f" {app.role}; grant select on app_labelled_tasks to {app.role}"
    )
    task = query("select id::text from public.tasks order by id limit 1")[0][0]
    for published in (1, 2):
        if published == 1:
            succeeds("publish", "publish")
        else:  # clean-up ended the parallel run (no merge base is kept): migrate again, the app's update of tasks
            succeeds("migrate", "--sample", "--no-publish")  # below backed up and replaced (--force)
            succeeds("publish", "publish", "--force")
        assert query(ON_KEPT_SCHEMAS) == []
        succeeds("publish", "cleanup", "--yes")
        assert app.write(
            "insert into app_notes (task_id) values (:task) returning label, touched, id > 0", {"task": task}
        ) == [("from the app", 1, True)]
        app.write("update tasks set title = title where id = :task", {"task": task})
        assert app.write("select app_label from app_labelled_tasks where id = :task", {"task": task}) == [
            ("FROM THE APP",)
        ]
        assert query("select count(*) from public.app_notes where label = 'from the app'") == [(published,)]
        assert query(
            "select relrowsecurity, (select count(*) from pg_policy where polrelid = c.oid) from pg_class c"
            " where oid = 'public.app_notes'::regclass"
        ) == [(True, 1)]


@pytest.mark.both_servers  # the server's pg_dump
def test_backups_are_the_operators_and_cleanup_refuses_a_backup_that_differs_from_its_dump(app: App) -> None:
    """Issue 27, case 3: no role but the operator's may use a backup or rolled-back schema; a kept schema changed
    after its dump is not dropped as "kept"."""

    def others_may_use(schema: str) -> list[str]:
        return [
            role
            for role in (app.role, app.owner, "public")
            if query(
                "select has_schema_privilege(%(role)s, n.oid, 'usage') or has_schema_privilege(%(role)s, n.oid,"
                " 'create') or coalesce(bool_or(has_table_privilege(%(role)s, c.oid, 'select, insert, update,"
                " delete')), false) from pg_namespace n left join pg_class c on c.relnamespace = n.oid"
                " and c.relkind = 'r' where n.nspname = %(schema)s group by n.oid",
                {"role": role, "schema": schema},
            )[0][0]
        ]

    succeeds("publish", "publish", "--app-role", app.role)
    (backup,) = query("select backup_schema from lifeos_migration.runs order by run_id desc limit 1")[0]
    assert others_may_use(backup) == []
    with lifeos_env.transaction() as cur:  # someone with the rights writes to the kept backup after its dump
        cur.execute(sql.SQL("insert into {}.domains (name) values ('written to the backup')").format(
            sql.Identifier(backup)))  # fmt: skip
    line = refused("publish", "cleanup", "--yes")
    assert f"schema {backup} differs from its dump" in line and "in domains:" in line
    assert query("select count(*) from pg_namespace where nspname = %s", (backup,)) == [(1,)]

    succeeds("publish", "rollback")
    (rolled_back,) = query("select backup_schema from lifeos_migration.runs order by run_id desc limit 1")[0]
    assert rolled_back.startswith("v2_rolledback_") and others_may_use(rolled_back) == []
    app.write("select count(*) from domains")  # live v2 is the app's again


@pytest.mark.both_servers  # the server's pg_restore
def test_restore_backup_takes_the_name_of_a_new_database_only(app: App) -> None:
    """Issue 27, case 4: a connection string or URI is no database name, and an existing database is refused."""
    succeeds("publish", "publish")
    (dump,) = query("select dump_path from lifeos_migration.runs where dump_path is not null order by run_id desc")[0]
    existing = os.environ["PGDATABASE"]
    before = query("select count(*) from pg_namespace")
    for into in (f"dbname={existing}", f"postgresql:///{existing}", f"postgres://localhost/{existing}"):
        line = refused("publish", "restore-backup", dump, "--into", into)
        assert "a database name" in line, line
    assert "already exists" in refused("publish", "restore-backup", dump, "--into", existing)
    assert query("select count(*) from pg_namespace") == before


def test_the_shrink_guard_counts_the_apps_own_deletes_as_live(app: App) -> None:
    """Issue 27, case 5: rows the app deleted are no loss of the new v2's (6 -> 5 when live has 5)."""
    succeeds("publish", "publish", "--app-role", app.role)
    (gone,) = app.write(
        "delete from context_types where id = (select id from context_types order by id desc limit 1) returning id"
    )
    assert query("select count(*) from public.context_types") == [(5,)]
    succeeds("migrate", "--sample", "--carry-forward")  # v1 still has 6; the merge deletes the app's one
    assert query("select count(*) from public.context_types where id = %s", (gone[0],)) == [(0,)]
    assert (
        "published although v2 shrank"
        not in query("select detail from lifeos_migration.runs where command = 'publish' order by run_id desc limit 1")[
            0
        ][0]
    )


def test_dbt_test_validates_where_v2_is_without_a_var(app: App, tmp_path: Path) -> None:
    """Issue 27, case 6: `dbt test` and `dbt docs generate` after a publish read live v2, after a build the
    shadow; naming the schema stays the override; with no v2 anywhere `dbt test` says so in one line."""
    succeeds("publish", "publish")
    success, outcomes, log = run_dbt("test", "--select", "tasks")
    assert success and outcomes and set(outcomes.values()) == {"pass"}, log
    dbt = str(Path(sys.executable).parent / "dbt")
    docs = [dbt, "docs", "generate", "--target-path", str(tmp_path), *lifeos_env.dbt_project_args()]
    assert subprocess.run(docs, capture_output=True).returncode == 0
    columns = json.loads((tmp_path / "catalog.json").read_text())["nodes"]["model.lifeos_migration.tasks"]["columns"]
    assert columns["title"]["type"] == "text"
    with lifeos_env.transaction() as cur:  # live v2 loses a named CHECK: only a check of live v2 sees it
        cur.execute("alter table public.tasks drop constraint tasks_priority_check")
    success, outcomes, _ = run_dbt("test", "--select", "tasks")
    assert not success and outcomes["catalog_matches_contract:tasks"] == "fail"
    build()
    success, outcomes, log = run_dbt("test", "--select", "tasks")  # the new build in the shadow: green
    assert success and set(outcomes.values()) == {"pass"}, log
    success, outcomes, _ = run_dbt("test", "--select", "tasks", "--vars", "{marts_schema: public}")
    assert not success and outcomes["catalog_matches_contract:tasks"] == "fail"
    with lifeos_env.transaction() as cur:
        cur.execute("alter schema v2_shadow rename to elsewhere; alter schema public rename to elsewhere_too")
    done = subprocess.run([dbt, "test", *lifeos_env.dbt_project_args()], capture_output=True, text=True)
    assert done.returncode != 0
    assert [line for line in done.stdout.splitlines() if "nothing to validate" in line] == [
        "  nothing to validate: neither the shadow v2_shadow nor live v2 public holds the v2 tables; run `dbt"
        " build` or scripts/migrate first"
    ]


def test_a_v1_row_with_a_null_id_is_named_as_such_and_is_an_acceptable_loss(sample_copy: str) -> None:
    """Issue 27, case 5: a v1 row without an id is no row "in v2 but not in v1"; --accept-rejects accepts it."""
    with lifeos_env.transaction() as cur:  # the restored v1 keeps no keys: a row without an id restores
        cur.execute("insert into v1.context_types (id, value, label) values (null, 'nowhere', 'No id')")
    build_vars = '{"files_checked": false, "accept_rejects": %s}'
    success, outcomes, _ = run_dbt("build", "--exclude-resource-type", "unit_test", "--vars", build_vars % "false")
    assert not success and outcomes["reconcile_ids:context_types"] == "pass"
    assert {check for check, status in outcomes.items() if status in ("fail", "error")} == {"rejects_policy"}
    assert query("select rule from v2_work.migration_rejects where v1_table = 'context_types' and v1_id is null") == [
        ("missing_required",)
    ]
    success, outcomes, log = run_dbt("build", "--exclude-resource-type", "unit_test", "--vars", build_vars % "true")
    assert success, log
