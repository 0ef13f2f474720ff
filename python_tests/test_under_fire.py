"""Publish, rollback, export-changes and clean-up under fire: no operator step or signal may lose a row (issue 15)."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest
from test_cutover import assert_search_finds_a_migrated_task, checksums, ledger, rebuilt, wait_for_lock_wait

import lifeos_env
import migrate
import publish
from lifeos import backups, catalog, cleanup, cutover, runs
from lifeos.settings import load as load_settings

__all__ = ["rebuilt"]  # the fixture, shared with test_cutover

APP_TASK = "44444444-4444-4444-4444-444444444444"


def start(script: str, *args: str) -> subprocess.Popen[str]:
    """scripts/<script> as an operator starts it, without a terminal, in a session of its own."""
    return subprocess.Popen(
        [sys.executable, f"scripts/{script}.py", *args], cwd=lifeos_env.ROOT, env=os.environ.copy(),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip


def run_publish(*args: str) -> subprocess.CompletedProcess[str]:
    process = start("publish", *args)
    stdout, _ = process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, "")


@contextmanager
def live_domains_locked() -> Iterator[None]:
    """An app transaction holding a lock on live domains that publish and rollback wait for."""
    blocker = lifeos_env.connect()
    try:
        with blocker.cursor() as cur:
            cur.execute("lock table public.domains in share mode")
        yield
    finally:
        blocker.rollback()
        blocker.close()


def first_to_end(processes: list[subprocess.Popen[str]], seconds: float) -> subprocess.Popen[str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                return process
        time.sleep(0.02)
    raise AssertionError(f"none of {len(processes)} runs ended within {seconds} s")


def stat_fields() -> Iterator[tuple[int, str, list[str]]]:
    """Each process's pid, name and the fields of /proc/<pid>/stat after its name (state, ppid, pgrp, session...)."""
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = status.read_text().split(" (", 1)
        except OSError:
            continue
        comm, fields = rest.rsplit(") ", 1)
        yield int(pid), comm, fields.split()


def gone(run: subprocess.Popen[str]) -> bool:
    """Whether every process of a stopped run (started in a session of its own, which its children and their
    children keep, orphaned or not) is gone within a few seconds (an orphan goes on much longer)."""

    def left() -> list[int]:
        return [pid for pid, _, fields in stat_fields() if int(fields[3]) == run.pid]

    deadline = time.monotonic() + 5
    while left() and time.monotonic() < deadline:
        time.sleep(0.05)
    return left() == []


def child_named(parent: int, name: str) -> int | None:
    return next((pid for pid, comm, fields in stat_fields() if comm == name and int(fields[1]) == parent), None)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single line a failed command printed; no traceback."""
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    return lines[0]


def dumped_data(dump: str, schema: str, table: str) -> str:
    """The rows of schema.table that a dump holds, as COPY text."""
    return backups.run_client("pg_restore", "--data-only", f"--schema={schema}", f"--table={table}", "--file=-", dump)


def assert_private(folder: Path) -> None:
    """Backups and exports are the person's whole life: 0700 folders of 0600 files."""
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for path in folder.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path


def test_cleanup_after_a_forced_rollback_dumps_the_app_rows_first(rebuilt: str, tmp_path: Path) -> None:
    """R1, R10, issue 14 item 9: rollback --force then cleanup --yes keeps the app's rows in a listed dump."""
    cutover.publish(load_settings())
    with lifeos_env.transaction() as cur:
        cur.execute("insert into tasks (id, domain_id, title) select %s, id, 'app' from domains limit 1", (APP_TASK,))
    assert run_publish("rollback", "--force").returncode == 0
    with lifeos_env.transaction() as cur:
        (rolled_back,) = catalog.schemas_like(cur, backups.ROLLED_BACK_PREFIX)
    assert "pass --yes" in one_line(run_publish("cleanup"))  # no terminal to ask on: refused, nothing dropped
    with lifeos_env.transaction() as cur:
        assert catalog.schema_exists(cur, rolled_back)

    done = run_publish("cleanup", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    command, result, _, dump, dump_sha256, *_, detail = ledger()[-1]
    assert (command, result) == ("cleanup", "cleaned up")
    assert f"{rolled_back} (kept in {dump})" in done.stdout.replace("\n", "") and f"{rolled_back} (kept in" in detail
    assert APP_TASK in dumped_data(dump, rolled_back, "tasks")
    assert backups.sha256(Path(dump)) == dump_sha256
    with lifeos_env.transaction() as cur:
        assert not catalog.schema_exists(cur, rolled_back)
    assert_private(tmp_path / "backups")


def test_objects_of_a_live_schema_without_tables_are_dumped_before_they_go(
    fresh_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R3: a function, a view and a sequence in the old live schema end in a listed dump, not nowhere."""
    monkeypatch.setenv("LIFEOS_BACKUP_DIR", str(tmp_path))
    with lifeos_env.transaction() as cur:
        cur.execute(
            "create function public.app_answer() returns int language sql return 42;"
            " create view public.app_view as select 1 as one; create sequence public.app_counter"
        )
    assert migrate.main(["--sample"]) == 0
    assert publish.main(["cleanup", "--yes"]) == 0
    dumps = [run[3] for run in ledger() if run[3]]
    listing = "".join(backups.run_client("pg_restore", "--list", dump) for dump in dumps)
    for entry in ("FUNCTION public app_answer()", "VIEW public app_view", "SEQUENCE public app_counter"):
        assert entry in listing


def names() -> set[tuple[str, str]]:
    """(table, id, name) of every domain and area of live v2."""
    with lifeos_env.transaction() as cur:
        cur.execute("select 'domains', id, name from domains union all select 'areas', id, name from areas")
        return set(cur.fetchall())


def app_writes_across_tables() -> None:
    """The app after cut-over: a new domain with a new area in it (areas sort before domains, and reference
    them), and a renamed area."""
    with lifeos_env.transaction() as cur:
        cur.execute(
            "with d as (insert into domains (name) values ('made in v2') returning id)"
            " insert into areas (domain_id, name) select id, 'new area in v2' from d;"
            " update areas set name = 'renamed in v2' where id = (select min(id::text)::uuid from areas"
            "  where name <> 'new area in v2')"
        )


def test_export_changes_replays_as_one_transaction_in_foreign_key_order(rebuilt: str, tmp_path: Path) -> None:
    """R6: changes.sql upserts in foreign-key order, all or nothing; --out, --schema and a bad folder refuse."""
    app_writes_across_tables()
    changed = names()
    out = tmp_path / "changes"
    assert run_publish("export-changes", "--out", str(out)).returncode == 0
    assert_private(out)
    assert "not empty" in one_line(run_publish("export-changes", "--out", str(out)))
    assert "no schema no_such_schema" in one_line(run_publish("export-changes", "--schema", "no_such_schema"))
    (tmp_path / "a-file").write_text("")
    assert str(tmp_path / "a-file") in one_line(run_publish("export-changes", "--out", str(tmp_path / "a-file/x")))

    cutover.publish(load_settings(), force=True)  # the app's rows leave live v2: a copy of v2 without them
    without = names()
    assert len(changed - without) == 3
    replay = ["psql", "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", f"--file={out / 'changes.sql'}"]
    with lifeos_env.transaction() as cur:  # the last statement fails: nothing of the export applies
        cur.execute("alter table areas add constraint no_rename check (name <> 'renamed in v2') not valid")
    with pytest.raises(lifeos_env.MigrationError, match=r"psql failed: .*renamed in v2"):
        backups.run_client(*replay)
    assert names() == without
    with lifeos_env.transaction() as cur:
        cur.execute("alter table areas drop constraint no_rename")
    backups.run_client(*replay)
    assert names() == changed


def test_two_publishes_at_once_the_second_fails_at_once_naming_the_first(rebuilt: str, tmp_path: Path) -> None:
    """R2, issue 14 item 5: one run at a time; the loser names the winner and touches nothing."""
    with live_domains_locked():
        runs = [start("publish", "publish", "--force"), start("publish", "publish", "--force")]
        wait_for_lock_wait(time.monotonic() + 60)  # one holds the run lock, waiting for the app's transaction
        loser = first_to_end(runs, 60)
        (winner,) = (run for run in runs if run is not loser)
        line = one_line(subprocess.CompletedProcess(loser.args, loser.returncode, loser.communicate()[0], ""))
        assert f"another run is using database {rebuilt}: lifeos publish pid {winner.pid} on " in line
        assert " started 20" in line
    assert winner.wait() == 0
    publishes = [run for run in ledger() if run[0] == "publish"]
    assert [run[1] for run in publishes] == ["published", "published"]
    dumps = sorted((tmp_path / "backups").iterdir())
    assert [str(path) for path in dumps] == [publishes[-1][3]]
    assert backups.sha256(dumps[0]) == publishes[-1][4]


def test_a_run_killed_by_sigkill_leaves_no_lock_and_is_recorded_as_interrupted(rebuilt: str) -> None:
    """Issue 14 item 5, R9: kill -9 a rollback that waits; the next run goes on, and the ledger says so."""
    with live_domains_locked():
        killed = start("publish", "rollback", "--force")
        wait_for_lock_wait(time.monotonic() + 60)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    assert cutover.rollback(load_settings(), force=True).startswith(backups.BACKUP_PREFIX)
    assert [run[:2] for run in ledger()[-2:]] == [("rollback", "interrupted"), ("rollback", "rolled back")]


def test_sigterm_stops_the_build_with_its_dbt(fresh_database: str) -> None:
    """R7: SIGTERM to scripts/migrate during the build stops dbt (in its process) too: its open queries are
    cancelled, and the build is recorded as interrupted."""
    run = start("migrate", "--sample", "--verbose")  # dbt's log as it runs
    for line in run.stdout:
        if "START sql table model v2_shadow." in line:
            break
    run.send_signal(signal.SIGTERM)
    assert "migration failed: stopped by SIGTERM" in run.communicate()[0]
    assert run.returncode == 1
    assert gone(run)
    with lifeos_env.transaction() as cur:
        cur.execute("select result from lifeos_migration.runs where full_build")
        assert cur.fetchall() == [("interrupted",)]
        cur.execute(
            "select query from pg_stat_activity where datname = %s and state <> 'idle' and pid <> pg_backend_pid()",
            (fresh_database,),
        )
        assert cur.fetchall() == []  # no query of the stopped build goes on


@pytest.mark.both_servers  # the server's own pg_dump
def test_sigterm_during_the_backup_stops_pg_dump_and_leaves_no_unlisted_dump(rebuilt: str, tmp_path: Path) -> None:
    """R7, R9: SIGTERM to publish while pg_dump runs: no orphan, no dump the ledger does not list."""
    run = start("publish", "publish")
    deadline = time.monotonic() + 60
    while child_named(run.pid, "pg_dump") is None:
        assert run.poll() is None and time.monotonic() < deadline, "publish ended before its pg_dump was seen"
        time.sleep(0.002)
    run.send_signal(signal.SIGTERM)
    assert "publish failed: stopped by SIGTERM" in run.communicate()[0]
    assert gone(run)  # an orphaned pg_dump would finish its file now
    assert ledger()[-1][:2] == ("publish", "interrupted")
    listed = {run[3] for run in ledger()}
    assert [path for path in (tmp_path / "backups").glob("*") if str(path) not in listed] == []


def wait_until(query: str, seconds: float = 60) -> None:
    """Until `query` (a count) is above zero on the target."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with lifeos_env.transaction() as cur:
            cur.execute(query)
            if cur.fetchone()[0]:
                return
        time.sleep(0.02)
    raise AssertionError(f"never true: {query}")


AREAS_LOCK_WAITED = "select count(*) from pg_locks where not granted and relation = 'public.areas'::regclass"


def test_publish_waits_in_short_tries_and_gives_up_naming_the_session_in_the_way(rebuilt: str) -> None:
    """Issue 14 item 6: while publish waits for an app transaction, the app's other writes still go through
    (each waits 2 s at most here); publish gives up after --lock-wait, naming the session in the way."""
    app = psycopg2.connect(application_name="the-app")
    writer = lifeos_env.connect()
    writer.autocommit = True
    try:
        with app.cursor() as cur:  # a write the app has not committed yet
            cur.execute("update areas set name = name where id = (select min(id::text)::uuid from areas)")
            cur.execute("select pg_backend_pid()")
            app_pid = cur.fetchone()[0]
        run = start("publish", "publish", "--lock-wait", "5")
        wait_until(AREAS_LOCK_WAITED)
        writes = 0
        with writer.cursor() as cur:
            cur.execute("set lock_timeout = '2s'")
            while run.poll() is None:  # a LockNotAvailable here: an app write stalled for 2 s behind publish
                cur.execute("update areas set name = name where id = (select max(id::text)::uuid from areas)")
                writes += 1
                time.sleep(0.05)
        assert writes >= 3  # each waited half a second at most behind a try of publish
        line = one_line(subprocess.CompletedProcess(run.args, run.returncode, run.communicate()[0], ""))
        assert line.startswith("publish failed: gave up after 5 s of waiting for the tables of public: held by ")
        assert f"pid {app_pid} (application 'the-app', idle in transaction since 20" in line
    finally:
        app.rollback()
        app.close()
        writer.close()
    with lifeos_env.transaction() as cur:
        assert catalog.tables(cur, "v2_shadow")  # nothing was published
    assert ledger()[-1][:2] == ("publish", "failed")


@pytest.mark.both_servers  # the server's own pg_dump and its locks
def test_publish_never_hangs_behind_a_session_queued_for_its_own_locks(rebuilt: str) -> None:
    """R4: an app write holds areas, publish waits for it, an ALTER-like session queues for ACCESS EXCLUSIVE
    behind publish. Publish's pg_dump must not queue behind that session for ever: publish goes through."""
    app, alter = lifeos_env.connect(), lifeos_env.connect()
    queued = threading.Thread(
        target=lambda: (alter.cursor().execute("lock table public.areas in access exclusive mode"), alter.commit())
    )
    run = None
    try:
        with app.cursor() as cur:
            cur.execute("lock table public.areas in row exclusive mode")
        run = start("publish", "publish")
        wait_until(AREAS_LOCK_WAITED)
        queued.start()
        wait_until(AREAS_LOCK_WAITED + " and mode = 'AccessExclusiveLock'")
        app.commit()  # the app's write ends: publish and the queued session get their turns
        assert run.wait(timeout=120) == 0, run.communicate()[0]
        queued.join(timeout=60)
        assert not queued.is_alive()
    finally:
        if run and run.poll() is None:
            run.kill()
        app.close()
        queued.join(timeout=60)
        alter.close()
    assert ledger()[-1][:2] == ("publish", "published")


@pytest.mark.both_servers  # the server's pg_dump and pg_restore
def test_a_backup_restores_into_a_new_database_table_for_table_and_search_finds_its_items(
    rebuilt: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """R8: the restore command of docs/cutover.md brings back every table of a backup, row for row, and rebuilds the
    search_index rows the backup leaves out; so does it from a backup of an older version (one custom-format
    file, not a folder), which clean-up counts as kept."""
    with lifeos_env.transaction() as cur:
        major = backups.server_major(cur.connection)
    older = tmp_path / "older.dump"  # live v2 backed up as publish did before the directory format
    backups.run_client("pg_dump", "--format=custom", "--schema=public", f"--file={older}", major=major)
    cutover.publish(load_settings())
    _, _, backup_schema, dump, *_ = ledger()[-1]
    assert Path(dump).is_dir()
    kept = checksums(backup_schema)
    with lifeos_env.transaction() as cur:  # as an older version listed its backup: the file and its sha256
        cur.execute(
            "update lifeos_migration.runs set dump_path = %s, dump_sha256 = %s where backup_schema = %s",
            (str(older), hashlib.sha256(older.read_bytes()).hexdigest(), backup_schema),
        )
        plan = cleanup.cleanup_plan(cur, load_settings(), runs.last_run(cur, load_settings(), runs.ANY_RUN).schemas)
        assert plan[backup_schema] == f"kept in {older}"
    for backup in (dump, str(older)):
        restored = f"{rebuilt}_restored"
        try:
            done = run_publish("restore-backup", backup, "--into", restored)
            assert done.returncode == 0, done.stdout
            assert f"restored {backup} into database {restored}: {len(kept)} tables" in done.stdout
            assert "already exists" in one_line(run_publish("restore-backup", backup, "--into", restored))
            with monkeypatch.context() as patched:
                patched.setenv("PGDATABASE", restored)
                assert checksums("public") == kept  # search_index's rows rebuilt as they were
                assert_search_finds_a_migrated_task()
        finally:
            lifeos_env.drop_database(restored)


def test_two_runs_on_one_storage_root_cannot_overlap(fresh_database: str, tmp_path: Path) -> None:
    """Issue 14 item 5: a run on the storage root another run holds fails at once, naming the first."""
    import run_lock  # here, so that the other tests also run (and fail) on code without it

    root = tmp_path / "files"
    with run_lock.storage_lock("files", root):  # this process: the first run (on another database, say)
        run = start("migrate", "--sample", "--storage-root", str(root))
        output = run.communicate(timeout=120)[0]
    assert run.returncode == 1 and "Traceback" not in output
    assert f"migration failed: another run is using the storage root {root}: lifeos files pid {os.getpid()} on " in (
        output
    )
    with lifeos_env.transaction() as cur:
        assert catalog.schemas_like(cur, "v1") == []  # it stopped before it restored anything
