"""Safe cut-over on a real database: publish, guard, backup, export, rollback, kill -9, clean-up (issue 8)."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest
from conftest import build, run_dbt
from psycopg2 import sql

import lifeos_env
import migrate
import publish
import restore_v1
from lifeos import backups, catalog, cutover, guard, report
from lifeos.settings import load as load_settings

SECRET = "pw-must-not-leak-7f3a"
TABLE_MD5 = "select md5(coalesce(string_agg(t::text, e'\\n' order by t::text), '')) from {} t"  # all rows, in order
# the app deletes a row no other table refers to, so no cascade changes other tables
DELETE_A_LEAF = "delete from public.daily_focus where id = (select min(id::text)::uuid from public.daily_focus)"


@pytest.fixture
def rebuilt(rebuilt: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """conftest's rebuilt sample (published once, built again), with a password that must never be shown."""
    monkeypatch.setenv("PGPASSWORD", SECRET)  # the servers trust local users
    return rebuilt


def checksums(schema: str = "public") -> dict[str, str]:
    """Per table of schema: md5 of all its rows' text, in a fixed order."""
    with lifeos_env.transaction() as cur:
        result = {}
        for table in catalog.tables(cur, schema):
            cur.execute(sql.SQL(TABLE_MD5).format(catalog.qualified(schema, table)))
            result[table] = cur.fetchone()[0]
    return result


def ledger() -> list[tuple]:
    """The ledger (the files step's build of int_files writes no mart, so it has no row)."""
    with lifeos_env.transaction() as cur:
        cur.execute(
            "select command, result, backup_schema, dump_path, dump_sha256, git_commit, table_counts, detail"
            " from lifeos_migration.runs order by run_id"
        )
        return cur.fetchall()


def app_writes() -> str:
    """What the app does after cut-over: one new domain, one renamed area. Returns the new domain's id."""
    with lifeos_env.transaction() as cur:
        cur.execute("insert into public.domains (name) values ('Made in v2, \"quoted\", it''s new') returning id")
        new_id = str(cur.fetchone()[0])
        cur.execute("update public.areas set name = 'renamed in v2' where id = (select min(id::text)::uuid from areas)")
    return new_id


@pytest.mark.both_servers  # the server's pg_dump, roles and grants
def test_publish_twice_gives_identical_content_a_backup_that_reads_back_and_the_app_role_its_grants(
    rebuilt: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    first = checksums()
    assert set(first) >= {"domains", "areas"}
    role = f"lifeos_app_{uuid.uuid4().hex[:8]}"
    with lifeos_env.transaction() as cur:
        cur.execute(sql.SQL("create role {}").format(sql.Identifier(role)))
    try:
        not_a_folder = tmp_path / "a-file"
        not_a_folder.write_text("")
        with pytest.raises(lifeos_env.MigrationError, match="cannot write to the backups folder"):
            cutover.publish(
                load_settings(), backup_to=not_a_folder / "backups", app_role=role
            )  # not without its backup
        assert ledger()[-1][1] == "failed"
        assert checksums() == first
        cutover.publish(load_settings(), app_role=role)  # the green build stays publishable
        assert checksums() == first
        with lifeos_env.transaction() as cur:
            cur.execute(
                "select has_schema_privilege(%(role)s, 'public', 'usage'),"
                " bool_and(has_table_privilege(%(role)s, format('public.%%I', t), 'select, insert, update, delete')),"
                " bool_or(has_table_privilege(%(role)s, format('public.%%I', t), 'truncate'))"
                " from unnest(array['domains', 'areas']) t",
                {"role": role},
            )
            assert cur.fetchone() == (True, True, False)
        as_the_app = lifeos_env.connect()
        try:  # the app's role writes through the change capture, and the guard sees it
            with as_the_app.cursor() as cur:
                cur.execute(sql.SQL("set role {}").format(sql.Identifier(role)))
                cur.execute("insert into public.domains (name) values ('by the app')")
                cur.execute(DELETE_A_LEAF)
                cur.execute("reset role")
                changes = {"activity_log": (1, 0), "daily_focus": (0, 1), "domains": (1, 0)}  # the delete's history
                assert guard.app_changes(cur, load_settings(), "public") == changes
        finally:
            as_the_app.rollback()
            as_the_app.close()
    finally:
        with lifeos_env.transaction() as cur:
            cur.execute(sql.SQL("drop owned by {0}; drop role {0}").format(sql.Identifier(role)))
    runs = ledger()
    assert [(command, result) for command, result, *_ in runs] == [
        ("build", "built"),
        ("publish", "published"),
        ("build", "built"),
        ("publish", "failed"),  # each attempt is a row of its own
        ("publish", "published"),
    ]
    _, _, backup_schema, dump_path, dump_sha256, commit, counts, detail = runs[-1]
    assert detail.startswith("the shadow of build run ")  # not the failed attempt's message
    assert checksums(backup_schema) == first
    # a folder in pg_dump's directory format; its checksum is the one docs/cutover.md's command gives
    assert (Path(dump_path) / "toc.dat").is_file()
    assert documented_checksum(Path(dump_path)) == dump_sha256 == backups.sha256(Path(dump_path))
    listing = backups.run_client("pg_restore", "--list", dump_path)
    assert re.search(r"TABLE DATA public domains ", listing) and re.search(r"TABLE DATA public areas ", listing)
    # the derived search_index is backed up without its rows (restore-backup rebuilds them: test_under_fire)
    assert re.search(r"TABLE public search_index ", listing) and "TABLE DATA public search_index " not in listing
    assert counts["domains"] == 5 and re.fullmatch(r"[0-9a-f]{40}", commit)
    assert SECRET not in "".join(capfd.readouterr())


def documented_checksum(folder: Path) -> str:
    """The checksum of a backup folder as docs/cutover.md computes it by hand."""
    done = subprocess.run("LC_ALL=C sha256sum -- * | sha256sum", shell=True, cwd=folder, capture_output=True,
                          text=True, check=True)  # fmt: skip
    return done.stdout.split()[0]


def assert_search_finds_a_migrated_task() -> None:
    """Search as the app makes it (docs/app-database.md) finds a task migrated from v1 by a word of its title."""
    with lifeos_env.transaction() as cur:
        cur.execute(
            "select id, (regexp_match(title, '[[:alpha:]]{4,}'))[1] from public.tasks"
            " where is_active and title ~ '[[:alpha:]]{4,}' order by id limit 1"
        )
        task, word = cur.fetchone()
        cur.execute(
            "select entity_id from public.search_index where document @@ public.search_query(%s) and is_active",
            (word,),
        )
        assert (task,) in cur.fetchall(), word


def test_guard_trips_on_app_rows_and_export_holds_them(rebuilt: str, tmp_path: Path) -> None:
    new_id = app_writes()
    with lifeos_env.transaction() as cur:  # a hard delete, and a row the app makes and deletes again (no trace)
        cur.execute(DELETE_A_LEAF + " returning id")
        deleted_id = str(cur.fetchone()[0])
        cur.execute("insert into public.domains (name) values ('short-lived') returning id")
        cur.execute("delete from public.domains where id = %s", cur.fetchone())
    live = checksums()
    with pytest.raises(guard.ChangesWouldBeLost) as refused:
        cutover.publish(load_settings())
    message = str(refused.value)
    assert "\n" not in message
    # activity_log keeps the history of both deletes (its trigger writes one row each): the app's data too
    assert "created or changed activity_log 2, areas 1, domains 1 rows; deleted daily_focus 1 rows" in message
    assert "--force" in message and "export-changes" in message and "`scripts/migrate --carry-forward`" in message
    assert checksums() == live
    assert ledger()[-1][1] == "refused"

    out = tmp_path / "changes"
    assert publish.main(["export-changes", "--out", str(out)]) == 0
    with (out / "domains.csv").open() as rows:
        assert [row["id"] for row in csv.DictReader(rows)] == [new_id]
    with (out / "areas.csv").open() as rows:
        assert [row["name"] for row in csv.DictReader(rows)] == ["renamed in v2"]
    with (out / "daily_focus.deleted.csv").open() as rows:
        assert [row["id"] for row in csv.DictReader(rows)] == [deleted_id]
    statements = (out / "changes.sql").read_text()
    assert new_id in statements and "'Made in v2, \"quoted\", it''s new'" in statements
    assert f"delete from daily_focus where id = '{deleted_id}';" in statements.splitlines()
    assert "short-lived" not in statements

    # The SQL export replays: after a forced publish wipes the row, the export's INSERT brings it back.
    cutover.publish(load_settings(), force=True)
    assert ledger()[-1][1] == "published"
    with lifeos_env.transaction() as cur:
        cur.execute("select count(*) from public.domains where id = %s", (new_id,))
        assert cur.fetchone() == (0,)
        domains_insert = next(line for line in statements.splitlines() if line.startswith("insert into domains "))
        cur.execute(domains_insert)
        cur.execute("select name from public.domains where id = %s", (new_id,))
        assert cur.fetchone() == ('Made in v2, "quoted", it\'s new',)
        cur.execute("select count(*) from public.daily_focus where id = %s", (deleted_id,))
        assert cur.fetchone() == (1,)  # the forced publish brought it back from v1; the export's DELETE replays
        cur.execute(f"delete from daily_focus where id = '{deleted_id}'")
        assert cur.rowcount == 1


def live_dump() -> str:
    """pg_dump of live v2 as text, without the random key of pg_dump 18's \\restrict lines (new in every dump)."""
    dump = backups.run_client("pg_dump", "--schema=public")
    return "\n".join(line for line in dump.splitlines() if not line.startswith(("\\restrict ", "\\unrestrict ")))


@pytest.mark.both_servers  # the server's pg_dump and pg_restore
def test_rollback_restores_byte_identical_content_and_cleanup_asks_first(
    rebuilt: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    before = live_dump()
    with lifeos_env.transaction() as cur:  # the new build's v2 differs from live v2
        cur.execute("update v2_shadow.domains set name = name || ' (renamed in v1)'")
    cutover.publish(load_settings())
    assert live_dump() != before
    assert publish.main(["rollback"]) == 0
    assert live_dump() == before  # search_index's rows too: the backup schema kept them
    assert_search_finds_a_migrated_task()
    command, result, displaced, *_ = ledger()[-1]
    assert (command, result) == ("rollback", "rolled back")
    assert displaced.startswith(backups.ROLLED_BACK_PREFIX)
    # the guard protects the app's rows from a rollback too
    app_writes()
    with pytest.raises(guard.ChangesWouldBeLost):
        cutover.rollback(load_settings())

    live = checksums()
    monkeypatch.setattr("builtins.input", lambda _question: "no")
    assert publish.main(["cleanup"]) == 1
    with lifeos_env.transaction() as cur:
        assert catalog.schemas_like(cur, backups.BACKUP_PREFIX) and catalog.schemas_like(cur, "v1")
    assert publish.main(["cleanup", "--yes"]) == 0
    with lifeos_env.transaction() as cur:
        cur.execute("select nspname from pg_namespace where nspname !~ '^(pg_|information_schema)' order by 1")
        assert [name for (name,) in cur.fetchall()] == ["lifeos_migration", "public"]
        cur.execute("select count(distinct schema_oid), bool_and(schema_oid = 'public'::regnamespace)"
                    " from lifeos_migration.changes")  # fmt: skip
        assert cur.fetchone() == (1, True)  # only the app's writes to the schema that is still live
    assert checksums() == live
    assert ledger()[-1][:2] == ("cleanup", "cleaned up")
    assert SECRET not in "".join(capfd.readouterr())


def wait_for_lock_wait(deadline: float) -> None:
    """Until a session waits to lock live domains (the publish step, behind the test's lock)."""
    while time.monotonic() < deadline:
        with lifeos_env.transaction() as cur:
            cur.execute("select count(*) from pg_locks where not granted and relation = 'public.domains'::regclass")
            if cur.fetchone()[0]:
                return
        time.sleep(0.05)
    raise AssertionError("the publish step never waited for the live tables")


def kill_migrate(patterns: list[str]) -> str:
    """Run scripts/migrate on a bigger sample (a finished run would change live v2) and SIGKILL its
    process group once its output has shown `patterns` in order.

    The pattern "<publish>" means: the publish step is waiting for the live tables, which the
    test holds locked. Returns the output seen.
    """
    blocker = lifeos_env.connect()
    with blocker.cursor() as cur:
        cur.execute("lock table public.domains in share mode")  # publish needs exclusive: it waits here
    process = subprocess.Popen(
        # --verbose: dbt's log lines, which the kill points below wait for
        [sys.executable, "scripts/migrate.py", "--sample", "--scale", "2", "--verbose"],
        cwd=lifeos_env.ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    seen = []
    try:
        for pattern in patterns:
            if pattern == "<publish>":
                wait_for_lock_wait(time.monotonic() + 120)
                continue
            for line in process.stdout:
                seen.append(line)
                if re.search(pattern, line):
                    break
            else:
                raise AssertionError(f"migrate ended before {pattern!r}:\n{''.join(seen)}")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        seen.append(process.stdout.read())
        process.wait()
        blocker.rollback()
        blocker.close()
    return "".join(seen)


def test_a_build_killed_anywhere_leaves_live_v2_untouched(rebuilt: str) -> None:
    live = checksums()
    points = {
        "during models": [r"START sql table model v2_shadow\."],
        "during tests": [r"OK created sql table model v2_shadow\.", r"START test "],
        "right before publish": [r"validation passed: report in", "<publish>"],  # the report precedes publish
    }
    for point, patterns in points.items():
        output = kill_migrate(patterns)
        assert checksums() == live, point
        assert SECRET not in output
        if "<publish>" not in patterns:
            with pytest.raises(lifeos_env.MigrationError, match=r"is interrupted; publish follows a green full"):
                cutover.publish(load_settings())  # a build that did not finish is never published
    # live v2 stays usable, and the green build of the run killed in its publish step is published next
    cutover.publish(load_settings())
    assert checksums() != live
    assert [result for _, result, *_ in ledger()][-5:] == [
        "interrupted",
        "interrupted",
        "built",
        "interrupted",  # the killed publish: the next run marks it
        "published",
    ]


def test_only_a_green_full_build_is_published(fresh_database: str) -> None:
    restore_v1.restore(load_settings(), restore_v1.SAMPLE_DUMP)
    migrate.dbt("run", "--select", "+domains")  # green, but a partial build
    with pytest.raises(lifeos_env.MigrationError, match="not a full build"):
        cutover.publish(load_settings())
    with pytest.raises(lifeos_env.MigrationError, match="failed"):
        build(v1_schema="no_such_schema")
    with pytest.raises(lifeos_env.MigrationError, match=r"is build failed; publish follows a green full"):
        cutover.publish(load_settings())
    with lifeos_env.transaction() as cur:
        assert catalog.tables(cur, "public") == []


@pytest.mark.both_servers  # the connection to v1 (PostgreSQL 15 on Supabase)
def test_v1_read_only_connection_refuses_writes(fresh_database: str) -> None:
    restore_v1.restore(load_settings(), restore_v1.SAMPLE_DUMP)
    conn = lifeos_env.connect_read_only(f"dbname={fresh_database}")
    try:
        with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction), conn.cursor() as cur:
            cur.execute("delete from v1.domains")
    finally:
        conn.close()
    with lifeos_env.transaction() as cur:
        cur.execute("select count(*) from v1.domains")
        assert cur.fetchone() == (5,)


def extension_schema(name: str) -> str:
    with lifeos_env.transaction() as cur:
        cur.execute("select extnamespace::regnamespace::text from pg_extension where extname = %s", (name,))
        return cur.fetchone()[0]


@pytest.mark.both_servers  # the server's extensions and their catalog
def test_extensions_in_the_live_schema_stay_live(fresh_database: str, tmp_path: Path) -> None:
    with lifeos_env.transaction() as cur:  # pg_trgm ships with Debian's PostgreSQL 15, vector with pgserver's 16
        cur.execute("select min(name) from pg_available_extensions where name in ('pg_trgm', 'vector')")
        extension = cur.fetchone()[0]
        cur.execute(sql.SQL("create extension {} schema public").format(sql.Identifier(extension)))
    restore_v1.restore(load_settings(), restore_v1.SAMPLE_DUMP)
    build()
    cutover.publish(load_settings(), backup_to=tmp_path)
    assert extension_schema(extension) == "public"
    cutover.rollback(load_settings())
    assert extension_schema(extension) == "public"
    with lifeos_env.transaction() as cur:
        cur.execute("select count(*) from pg_tables where schemaname = 'public'")
        assert cur.fetchone() == (0,)  # the original, empty public is live again, with its extension


@pytest.mark.usefixtures("rebuilt")
def test_a_report_after_a_rollback_says_its_checks_are_of_the_replaced_v2() -> None:
    """The report counts live v2 beside the last dbt run's checks; after a rollback those checked the v2 the
    rollback replaced, and the report says so until a `dbt test` checks the live one."""
    run_dbt("test", "--select", "marts migration_rejects")  # checks the new build, in the shadow
    cutover.publish(load_settings())
    assert publish.main(["rollback"]) == 0
    assert report.run(load_settings()).notes[0].startswith("live v2 was rolled back at ")
    _, outcomes, output = run_dbt("test", "--select", "marts migration_rejects")
    assert set(outcomes.values()) == {"pass"}, output
    assert not any("rolled back" in line for line in report.run(load_settings()).notes)
