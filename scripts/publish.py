"""Cut-over of live v2: publish a green build, roll back, export the app's changes, clean up.

`dbt build` writes v2 into the empty shadow schema and records its verdict in
the ledger (<meta_schema>.runs, macros/migration_ledger.sql). `publish` then,
in one transaction: locks the live tables against writes, refuses when they
hold rows the app created, changed or deleted since the last publish that
`scripts/migrate --carry-forward` did not merge into the build (unless --force)
or when the new v2 would shrink a table (unless --allow-shrink),
pg_dumps the live schema into the backups folder (a folder in pg_dump's
directory format, written by parallel jobs) and checks that the dump reads
back, renames live -> v2_backup_<UTC time> and shadow -> live, carries the app's
own objects (alembic_version, its tables, views, functions) and the replaced
schema's privileges into the new live schema, grants the app's role its rights,
and installs triggers on the live tables that record each insert, update and
delete the app makes in the ledger (with the row as it was before an update or
delete), which is how the next publish, rollback, export or carry-forward knows
the app's writes. Rollback swaps the same way. scripts/migrate.py
calls publish() right after its `dbt build`.

    publish          publish the shadow of the last green `dbt build`
    rollback         make the newest v2_backup_* schema live again
    export-changes   write the rows the app created, changed or deleted since the last publish, as CSV and SQL;
                     with --to-v1, as SQL in v1's shape for v1's database (a rollback to v1)
    cleanup          drop the v1 copy, v2_work, dbt_test__audit, the shadow and every backup schema (asks, or --yes);
                     a backup schema no dump holds yet is dumped first
    restore-backup   restore a backup dump into a new database, search_index's rows rebuilt
"""

from __future__ import annotations

import argparse
import csv
import graphlib
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, TypeVar

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import tenacity
from psycopg2 import sql
from psycopg2.extras import Json
from rich.console import Console

import lifeos_env
import run_lock

Cursor = psycopg2.extensions.cursor
Connection = psycopg2.extensions.connection
T = TypeVar("T")
console = Console(soft_wrap=True)  # a one-line message stays one line
BACKUP_PREFIX = "v2_backup_"
ROLLED_BACK_PREFIX = "v2_rolledback_"
DEFAULT_BACKUP_DIR = Path("/opt/lifeos/backups")
LOCK_TRY = "500ms"  # the longest one try waits for a lock: app queries queued behind it wait no longer
LOCK_WAIT = 30.0  # seconds of tries before giving up (--lock-wait)
SHRINK_TOLERANCE = 0.05  # a table may lose up to this share of its published rows (rows deleted in v1) unasked
# What the app's role gets on live v2, on its objects now and (default privileges) on those created later.
APP_PRIVILEGES = {"tables": "select, insert, update, delete", "sequences": "usage, select", "functions": "execute"}
BUILDS = ("build", "run")  # ledger commands that write the shadow schema
ANY_RUN = (*BUILDS, "publish", "rollback", "cleanup")
TEST_FAILURES_SCHEMA = "dbt_test__audit"  # where dbt stores failing test rows (store_failures), for scripts/report
# Derived tables: rebuilt from the others (refresh_search_index()), so the backup holds no rows of theirs and the
# guard records no writes to them.
DERIVED = ("search_index",)
TO_V1_TAG = "to_v1"  # the models of the mapping back to v1 (models/to_v1)
V1_TABLES_SCHEMA = "public"  # where v1's tables are on Supabase: the schema the export to v1 writes into
# Columns of the models of models/to_v1 that say how to export a row, not v1's own (models/docs.md)
EXPORT_COLUMNS = ("not_representable", "load_order", "upload_blob_from")
CAPTURE_TRIGGER = "lifeos_capture_changes"  # the triggers that record the app's writes, <name>_<insert|update|delete>
# Exported rows are written in their text form, which must not depend on the client's settings.
SESSION_OPTIONS = (
    "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=1 -c bytea_output=hex"
)


class ChangesWouldBeLost(lifeos_env.MigrationError):
    """Live v2 holds rows the app created, changed or deleted since the last publish."""


class LateChanges(ChangesWouldBeLost):
    """The app wrote to live v2 after its writes were merged into the shadow (scripts/migrate --carry-forward)."""


class WouldShrink(ChangesWouldBeLost):
    """The new v2 has far fewer rows than live v2 in a migrated table: rows would leave v2."""


class LockBusy(lifeos_env.MigrationError):
    """A lock was not free within one try (LOCK_TRY)."""


@dataclass
class Run:
    """One row of the ledger."""

    run_id: int
    command: str
    full_build: bool
    result: str
    schemas: dict[str, str]
    app_role: str | None


def meta(name: str) -> sql.Composed:
    """A table of the migration's durable schema (var meta_schema)."""
    return sql.SQL("{}.{}").format(sql.Identifier(lifeos_env.dbt_var("meta_schema")), sql.Identifier(name))


def last_run(cur: Cursor, commands: tuple[str, ...]) -> Run:
    """The newest ledger row of one of `commands`."""
    cur.execute("select to_regclass(%s) is not null", (meta("runs").as_string(cur),))
    row = None
    if cur.fetchone()[0]:
        cur.execute(
            sql.SQL(
                "select run_id, command, full_build, result, schemas, app_role from {}"
                " where command = any(%s) order by run_id desc limit 1"
            ).format(meta("runs")),
            (list(commands),),
        )
        row = cur.fetchone()
    if row is None:
        raise lifeos_env.MigrationError("no migration has run on this database: run scripts/migrate first")
    return Run(*row)


def git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=lifeos_env.ROOT, capture_output=True, text=True)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def new_run(cur: Cursor, command: str, template: Run, build_run_id: int | None = None) -> int:
    """Record the start of a publish, rollback or clean-up, committed at once so a failure is recorded too."""
    cur.execute(
        sql.SQL(
            "insert into {} (command, schemas, app_role, build_run_id, result)"
            " values (%s, %s, %s, %s, 'running') returning run_id"
        ).format(meta("runs")),
        (command, Json(template.schemas), template.app_role, build_run_id),
    )
    run_id = cur.fetchone()[0]
    cur.connection.commit()
    return run_id


def finish_run(cur: Cursor, run_id: int, **fields: object) -> None:
    fields = {"finished_at": datetime.now(UTC), "git_commit": git_commit(), **fields}
    cur.execute(
        sql.SQL("update {} set {} where run_id = %s").format(
            meta("runs"),
            sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in fields),
        ),
        [Json(value) if isinstance(value, dict) else value for value in fields.values()] + [run_id],
    )


def recorded(run_id: int, work: Callable[[Cursor], T], lock_wait: float, schemas: list[str]) -> T:
    """Run work(cur) as one transaction; on failure it is rolled back and the run's result says why.

    Each lock the work takes is waited for LOCK_TRY at most (so the app's queries never queue behind it for
    long); when one is busy, the transaction is rolled back and tried again, for up to lock_wait seconds,
    then the run fails naming the sessions that hold locks on `schemas`.
    """
    with closing(lifeos_env.connect(options=SESSION_OPTIONS)) as conn:
        try:
            return in_short_tries(conn, work, lock_wait, schemas)
        except (lifeos_env.MigrationError, psycopg2.Error) as error:
            conn.rollback()
            message = str(error).strip().splitlines()[0]
            result = (
                "refused"
                if isinstance(error, ChangesWouldBeLost)
                else "interrupted"
                if isinstance(error, lifeos_env.Interrupted)
                else "failed"
            )
            with conn, conn.cursor() as cur:
                finish_run(cur, run_id, result=result, detail=message)
            if isinstance(error, psycopg2.Error):
                raise lifeos_env.MigrationError(message) from error
            raise


def in_short_tries(conn: Connection, work: Callable[[Cursor], T], lock_wait: float, schemas: list[str]) -> T:
    def once() -> T:
        with conn, conn.cursor() as cur:
            cur.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(LOCK_TRY)))
            return work(cur)

    busy = (LockBusy, psycopg2.errors.LockNotAvailable)
    try:
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(busy),
            stop=tenacity.stop_after_delay(lock_wait),
            wait=tenacity.wait_random(0.1, 0.5),
            reraise=True,
        )(once)
    except busy:
        with conn, conn.cursor() as cur:
            holders = sessions_in_the_way(cur, schemas)
        raise lifeos_env.MigrationError(
            f"gave up after {lock_wait:g} s of waiting for the tables of {', '.join(schemas)}: {holders}"
        ) from None


def sessions_in_the_way(cur: Cursor, schemas: list[str]) -> str:
    """The other sessions that hold or wait for locks (beyond reading) on tables of `schemas`."""
    cur.execute(
        "select a.pid, a.application_name, a.state, min(coalesce(a.xact_start, a.backend_start))"
        " from pg_locks l join pg_class c on c.oid = l.relation join pg_stat_activity a on a.pid = l.pid"
        " where l.database = (select oid from pg_database where datname = current_database())"
        " and c.relnamespace in (select oid from pg_namespace where nspname = any(%s))"
        " and l.mode <> 'AccessShareLock' and l.pid <> pg_backend_pid()"
        " group by 1, 2, 3 order by 4",
        (schemas,),
    )
    sessions = [
        f"pid {pid} (application {name!r}, {state} since {since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC)"
        for pid, name, state, since in cur.fetchall()
    ]
    return "held by " + ", ".join(sessions) if sessions else "no session holds them now"


def tables(cur: Cursor, schema: str) -> list[str]:
    cur.execute(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relkind in ('r', 'p') and not c.relispartition order by 1",
        (schema,),
    )
    return [name for (name,) in cur.fetchall()]


def schemas_like(cur: Cursor, prefix: str) -> list[str]:
    """Schemas whose name starts with prefix, newest (highest time suffix) first."""
    cur.execute(
        "select nspname from pg_namespace where starts_with(nspname, %s) order by nspname desc",
        (prefix,),
    )
    return [name for (name,) in cur.fetchall()]


def schema_exists(cur: Cursor, schema: str) -> bool:
    cur.execute("select count(*) from pg_namespace where nspname = %s", (schema,))
    return cur.fetchone()[0] == 1


def qualified(schema: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def published_by(cur: Cursor, schema: str) -> int | None:
    """The run that published `schema` (schema oids survive renames), if one did."""
    cur.execute(
        sql.SQL(
            "select max(run_id) from {} where published_schema_oid = (select oid from pg_namespace where nspname = %s)"
        ).format(meta("runs")),
        (schema,),
    )
    return cur.fetchone()[0]


def capture_changes(cur: Cursor, schema: str) -> None:
    """Record every insert, update and delete on the tables of `schema` but the derived ones in the change log."""
    lifeos_env.create_meta_tables(cur, "changes")
    events = {
        "insert": "new table as new_rows",
        "update": "old table as old_rows new table as new_rows",
        "delete": "old table as old_rows",
    }
    for table in tables(cur, schema):
        if table in DERIVED:
            continue
        for event, transition in events.items():
            cur.execute(
                sql.SQL(
                    "create or replace trigger {name} after {event} on {table} referencing {transition}"
                    " for each statement execute function {record}()"
                ).format(
                    name=sql.Identifier(f"{CAPTURE_TRIGGER}_{event}"),
                    event=sql.SQL(event),
                    table=qualified(schema, table),
                    transition=sql.SQL(transition),
                    record=meta("record_changes"),
                )
            )


def net_changes(schema: str, unmerged_by: int | None = None) -> sql.Composed:
    """Query of each row of `schema` the app wrote since the schema was published (with `unmerged_by`, a build's
    run id: not yet merged into its shadow), once, with its table, id, kind ('changed': created or updated, and
    still there; 'deleted': published, now gone) and, when deleted, the row as it was. A row the app created and
    deleted again is not in it."""
    return sql.SQL(
        "select table_name, row_id, case when last_op = 'DELETE' then 'deleted' else 'changed' end as kind, old_row"
        " from (select table_name, row_id, (array_agg(operation order by change_id))[1] as first_op,"
        " (array_agg(operation order by change_id desc))[1] as last_op,"
        " (array_agg(old_row order by change_id desc))[1] as old_row"
        " from {changes} where schema_oid = (select oid from pg_namespace where nspname = {schema})"
        " {unmerged} group by table_name, row_id) as written"
        " where not (first_op = 'INSERT' and last_op = 'DELETE')"
    ).format(
        changes=meta("changes"),
        schema=sql.Literal(schema),
        unmerged=sql.SQL("and merged_into is distinct from {}").format(sql.Literal(unmerged_by))
        if unmerged_by
        else sql.SQL(""),
    )


def row_counts(cur: Cursor, schema: str) -> dict[str, int]:
    """Rows per table of `schema`."""
    counts = {}
    for table in tables(cur, schema):
        cur.execute(sql.SQL("select count(*) from {}").format(qualified(schema, table)))
        counts[table] = cur.fetchone()[0]
    return counts


def app_changes(cur: Cursor, schema: str, unmerged_by: int | None = None) -> dict[str, tuple[int, int]]:
    """Per table of `schema` the app wrote since it was published (with `unmerged_by`: not merged into that
    build's shadow): the rows it created or changed, and deleted."""
    cur.execute("select to_regclass(%s) is not null", (meta("changes").as_string(cur),))
    if not cur.fetchone()[0]:
        return {}
    if unmerged_by:
        lifeos_env.create_meta_tables(cur, "changes")  # a log of an older version gets merged_into
    cur.execute(
        sql.SQL(
            "select table_name, count(*) filter (where kind = 'changed'), count(*) filter (where kind = 'deleted')"
            " from ({}) as net group by table_name order by table_name"
        ).format(net_changes(schema, unmerged_by))
    )
    return {table: (changed, deleted) for table, changed, deleted in cur.fetchall()}


def hold_live(cur: Cursor, live: str, action: str, force: bool, carried: list[str], build: int | None = None) -> None:
    """Lock the live tables against writes (reads go on), then refuse if the app changed any that do not
    stay live (the app's own tables, `carried`, do) and that scripts/migrate --carry-forward did not merge
    into the shadow of `build` (a publish's build run id)."""
    live_tables = tables(cur, live)
    if live_tables:
        cur.execute(
            sql.SQL("lock table {} in exclusive mode").format(
                sql.SQL(", ").join(qualified(live, table) for table in live_tables)
            )
        )
    changes = {table: rows for table, rows in app_changes(cur, live, build).items() if table not in carried}
    if changes and not force and build and merged_any(cur, live, build):
        raise LateChanges(
            f"the app wrote to live v2 (schema {live}) after its writes were carried into the shadow of build run"
            f" {build}: carry them forward again"
        )
    if changes and not force:
        counts = [
            f"{what} " + ", ".join(f"{table} {counts[kind]}" for table, counts in changes.items() if counts[kind])
            + " rows"
            for kind, what in enumerate(("created or changed", "deleted"))
            if any(counts[kind] for counts in changes.values())
        ]  # fmt: skip
        raise ChangesWouldBeLost(
            f"live v2 (schema {live}) holds the app's writes since the last migration, which {action} would"
            f" undo ({'; '.join(counts)}); "
            + ("carry them into the new v2 with `scripts/migrate --carry-forward`, " if action == "publish" else "")
            + f"export them with `scripts/publish export-changes`, or {action} anyway with"
            f" `scripts/publish {action} --force`"
        )


def merged_any(cur: Cursor, live: str, build: int) -> bool:
    """Whether scripts/migrate --carry-forward merged writes of the app's to `live` into the shadow of `build`."""
    cur.execute(
        sql.SQL(
            "select exists (select from {} where merged_into = %s"
            " and schema_oid = (select oid from pg_namespace where nspname = %s))"
        ).format(meta("changes")),
        (build, live),
    )
    return cur.fetchone()[0]


def private_folder(folder: Path, what: str, choose: str) -> Path:
    """Create `folder` (the `what`) open to its owner only (0700): backups and exports hold a person's whole life.

    A folder of ours that others can read is closed; a shared one (another owner, or sticky like /tmp) is
    refused, saying how to `choose` another.
    """
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = folder.stat()
        if status.st_mode & 0o077:
            if status.st_uid != os.getuid() or status.st_mode & stat.S_ISVTX:
                raise lifeos_env.MigrationError(
                    f"the {what} {folder} is open to other users (mode {stat.S_IMODE(status.st_mode):o}) and is"
                    f" not ours to close; {choose}"
                )
            folder.chmod(0o700)
    except OSError as error:
        raise lifeos_env.MigrationError(f"cannot write to the {what} {folder}: {error.strerror}; {choose}") from error
    return folder


def private_file(path: Path, mode: str = "wb") -> IO:
    """A new file, readable by its owner only (0600); never an existing one."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), mode)


def backup_dir(chosen: Path | None) -> Path:
    folder = chosen or Path(os.environ.get("LIFEOS_BACKUP_DIR") or DEFAULT_BACKUP_DIR)
    return private_folder(folder, "backups folder", "choose one with --backup-dir or LIFEOS_BACKUP_DIR")


def run_client(*args: str, into: IO | None = None, major: int | None = None) -> str:
    """Run a PostgreSQL client program (the newest, or version `major`) on the target (PG* variables): its
    stdout (or `into` a file), or an error. What it writes (a backup's files) is its owner's only (umask 077)."""
    done = lifeos_env.run_child(
        [lifeos_env.pg_client(args[0], major), *args[1:]],
        stdout=into or subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        umask=0o077,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        # pg_dump's --lock-wait-timeout ran out, or one of its jobs found a lock queued since its leader's (NOWAIT)
        busy = "Query was: LOCK TABLE" in done.stderr or "could not obtain lock on relation" in done.stderr
        raise (LockBusy if busy else lifeos_env.MigrationError)(f"{args[0]} failed: {last}")
    return done.stdout


def server_major(conn: Connection) -> int | None:
    """The server's major version when its own client programs are installed: a backup written by its pg_dump
    restores into the same server with its pg_restore (a newer one would send settings it does not know)."""
    major = conn.server_version // 10000
    return major if major in lifeos_env.pg_clients("pg_dump") and major in lifeos_env.pg_clients("pg_restore") else None


def holds_objects(cur: Cursor, schema: str) -> bool:
    """Whether `schema` holds anything of its own (tables, views, sequences, functions, types), extensions aside."""
    cur.execute(
        "select exists (select from ("
        " select 'pg_class'::regclass, oid from pg_class where relnamespace = n.oid"
        " union all select 'pg_proc'::regclass, oid from pg_proc where pronamespace = n.oid"
        " union all select 'pg_type'::regclass, oid from pg_type"
        "  where typnamespace = n.oid and typrelid = 0 and typcategory <> 'A'"
        ") o (classid, objid) where not exists (select from pg_depend d"
        "  where d.classid = o.classid and d.objid = o.objid and d.deptype = 'e'))"
        " from pg_namespace n where n.nspname = %s",
        (schema,),
    )
    found = cur.fetchone()
    return bool(found and found[0])


def dump_jobs(cur: Cursor) -> tuple[int, str | None]:
    """How many pg_dump jobs a backup runs: one per core, as many as the server has connections free for
    (each job is a session; pg_dump's leader is one more); when one, why."""
    cur.execute(
        "select current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
        " - (select count(*) from pg_stat_activity where backend_type = 'client backend')"
    )
    free = cur.fetchone()[0]
    jobs = min(os.cpu_count() or 1, free - 1)
    if jobs > 1:
        return jobs, None
    return 1, "one core" if (os.cpu_count() or 1) == 1 else f"the server has {max(free, 0)} connections free"


def dump_schemas(cur: Cursor, schemas: list[str], folder: Path, name: str) -> tuple[Path, str]:
    """pg_dump `schemas` (derived tables' rows left out), as the transaction of `cur` sees them, into a new
    private folder folder/<database>_<name>.dump (pg_dump's directory format: toc.dat and a file per table,
    written by parallel jobs, each on this transaction's snapshot), check that it reads back; return the
    folder and its checksum (sha256). A dump that is not complete is removed. pg_dump waits LOCK_TRY at most
    for a lock: one queued behind a session that waits for this transaction's locks would otherwise wait for
    ever (its jobs do not wait at all: a lock queued since pg_dump's own is a busy try too)."""
    path = folder / f"{os.environ['PGDATABASE']}_{name}.dump"
    cur.execute("select pg_export_snapshot()")
    snapshot = cur.fetchone()[0]
    jobs, serial = dump_jobs(cur)
    if serial:
        console.print(f"[yellow]note: the backup is dumped by one pg_dump job: {serial}[/yellow]", highlight=False)
    options = ("--format=directory", f"--jobs={jobs}", f"--snapshot={snapshot}", f"--lock-wait-timeout={LOCK_TRY}")
    derived = [f'--exclude-table-data="{schema}"."{table}"' for schema in schemas for table in DERIVED]
    try:
        path.mkdir(mode=0o700)  # new and private; pg_dump fills an empty folder
        schema_options = (f'--schema="{schema}"' for schema in schemas)
        run_client("pg_dump", *options, *schema_options, *derived, f"--file={path}", major=server_major(cur.connection))
        entries = [line.split() for line in run_client("pg_restore", "--list", str(path)).splitlines()]
        for schema in schemas:
            read_back = {fields[6] for fields in entries if fields[3:6] == ["TABLE", "DATA", schema]}
            missing = set(tables(cur, schema)) - set(DERIVED) - read_back
            if missing:
                raise lifeos_env.MigrationError(
                    f"backup {path} does not read back: pg_restore -l lacks {schema} {sorted(missing)}"
                )
        return path, sha256(path)
    except BaseException:
        remove_dump(path)
        raise


def remove_dump(path: Path) -> None:
    """Remove a dump: a folder (directory format) or a file (the custom format of older backups). A stopped
    pg_dump's jobs may write one last file as they stop: a folder that is not yet empty is tried again."""
    if not path.is_dir() or path.is_symlink():
        path.unlink(missing_ok=True)
        return
    tries = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(OSError), stop=tenacity.stop_after_attempt(10),
        wait=tenacity.wait_fixed(0.1), reraise=True,
    )  # fmt: skip
    for attempt in tries:
        with attempt:
            if path.exists():
                shutil.rmtree(path)


def sha256(path: Path) -> str:
    """The checksum the ledger keeps of a dump (dump_sha256). Of a file (the custom format of older backups):
    its sha256. Of a folder (directory format): the sha256 of the `sha256sum` lines of its files in name order,
    what `cd FOLDER && LC_ALL=C sha256sum -- * | sha256sum` prints; toc.dat is one of them, so a changed,
    missing or added file changes it."""
    if not path.is_dir():
        return file_sha256(path)
    lines = "".join(f"{file_sha256(entry)}  {entry.name}\n" for entry in sorted(path.iterdir()))
    return hashlib.sha256(lines.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as dump:  # a folder in a dump's folder: IsADirectoryError
        for block in iter(lambda: dump.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def swap_in(cur: Cursor, incoming: str, live: str, outgoing: str, app_role: str | None, apps: AppObjects) -> None:
    """Rename live -> outgoing and incoming -> live; extensions, the app's objects and privileges follow the live
    name."""
    if schema_exists(cur, live):
        cur.execute(sql.SQL("alter schema {} rename to {}").format(sql.Identifier(live), sql.Identifier(outgoing)))
    cur.execute(sql.SQL("alter schema {} rename to {}").format(sql.Identifier(incoming), sql.Identifier(live)))
    cur.execute(
        "select e.extname, e.extrelocatable from pg_extension e join pg_namespace n on n.oid = e.extnamespace"
        " where n.nspname = %s",
        (outgoing,),
    )
    for extension, relocatable in cur.fetchall():
        if not relocatable:
            raise lifeos_env.MigrationError(f"extension {extension} lives in schema {live} and cannot move with it")
        cur.execute(sql.SQL("alter extension {} set schema {}").format(sql.Identifier(extension), sql.Identifier(live)))
    if schema_exists(cur, outgoing):
        carry_app_objects(cur, apps, outgoing, live)
        carry_over_privileges(cur, outgoing, live)
    if app_role:
        grant_app_role(cur, live, app_role)


def check_role(cur: Cursor, role: str) -> None:
    """Fail in one line when the app's role does not exist on the target server."""
    cur.execute("select count(*) from pg_roles where rolname = %s", (role,))
    if cur.fetchone()[0] == 0:
        raise lifeos_env.MigrationError(
            f"the app role {role} (--app-role / LIFEOS_APP_ROLE) does not exist on the target server"
        )


def grant_app_role(cur: Cursor, schema: str, role: str) -> None:
    """Grant the app's role what the app needs on `schema`, now and on objects created in it later."""
    check_role(cur, role)
    names = {"schema": sql.Identifier(schema), "role": sql.Identifier(role)}
    cur.execute(sql.SQL("grant usage on schema {schema} to {role}").format(**names))
    for kind, privileges in APP_PRIVILEGES.items():
        for grant in (
            "grant {privileges} on all {kind} in schema {schema} to {role}",
            "alter default privileges in schema {schema} grant {privileges} on {kind} to {role}",
        ):
            cur.execute(sql.SQL(grant).format(privileges=sql.SQL(privileges), kind=sql.SQL(kind), **names))


# One GRANT (or ALTER DEFAULT PRIVILEGES) per privilege any role but the owner held in schema %(old)s: on the
# schema, on each table, view, sequence and function that %(new)s holds under the same name, and by default.
CARRIED_PRIVILEGES = """
with grantable as (
    select 'schema ' || quote_ident(%(new)s) as object, n.nspowner as owner, n.nspacl as acl
    from pg_namespace n where n.nspname = %(old)s
    union all
    select case c.relkind when 'S' then 'sequence ' else 'table ' end || format('%%I.%%I', %(new)s, c.relname),
        c.relowner, c.relacl
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = %(old)s and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S') and exists (
        select from pg_class t join pg_namespace tn on tn.oid = t.relnamespace
        where tn.nspname = %(new)s and t.relname = c.relname and t.relkind = c.relkind)
    union all
    select format('function %%I.%%I(%%s)', %(new)s, p.proname, pg_get_function_identity_arguments(p.oid)),
        p.proowner, p.proacl
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = %(old)s and exists (
        select from pg_proc t join pg_namespace tn on tn.oid = t.pronamespace
        where tn.nspname = %(new)s and t.proname = p.proname
            and pg_get_function_identity_arguments(t.oid) = pg_get_function_identity_arguments(p.oid))
)
select format('grant %%s on %%s to %%s%%s', a.privilege_type, g.object,
    case a.grantee when 0 then 'public' else a.grantee::regrole::text end,
    case when a.is_grantable then ' with grant option' else '' end)
from grantable g cross join aclexplode(g.acl) a
where a.grantee <> g.owner
union all
select format('alter default privileges for role %%s in schema %%I grant %%s on %%s to %%s', d.defaclrole::regrole,
    %(new)s, a.privilege_type,
    case d.defaclobjtype when 'r' then 'tables' when 'S' then 'sequences' when 'f' then 'functions' else 'types' end,
    case a.grantee when 0 then 'public' else a.grantee::regrole::text end)
from pg_default_acl d join pg_namespace n on n.oid = d.defaclnamespace cross join aclexplode(d.defaclacl) a
where n.nspname = %(old)s
"""


def carry_over_privileges(cur: Cursor, old: str, new: str) -> None:
    """Give schema `new` the privileges schema `old` gave: an app that worked before a publish keeps working."""
    cur.execute(CARRIED_PRIVILEGES, {"old": old, "new": new})
    for (grant,) in cur.fetchall():
        cur.execute(grant)


def access_warning(cur: Cursor, live: str) -> list[str]:
    """A warning when no role but the owner may read live v2's tables."""
    cur.execute(
        "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " cross join aclexplode(c.relacl) a where n.nspname = %s and c.relkind in ('r', 'p')"
        " and a.grantee <> c.relowner and a.privilege_type = 'SELECT'",
        (live,),
    )
    if cur.fetchone()[0]:
        return []
    return [
        f"no application role has access to live v2 (schema {live}): name the app's role with --app-role ROLE"
        " (or LIFEOS_APP_ROLE)"
    ]


def refuse_shrink(cur: Cursor, live: str, shadow: str, allow: bool) -> list[str]:
    """Refuse (unless `allow`) when a table of `shadow` has far fewer rows than live v2 had when published,
    or none where it had some (a table only live v2 has stays live). Return the note for the report when
    allowed."""
    run_id = published_by(cur, live)
    before: dict[str, int] = {}
    if run_id is not None:
        cur.execute(sql.SQL("select table_counts from {} where run_id = %s").format(meta("runs")), (run_id,))
        before = cur.fetchone()[0] or {}
    after = row_counts(cur, shadow)
    shrunk = [
        f"{table} {rows} -> {after[table]}"
        for table, rows in sorted(before.items())
        if table in after and rows and (after[table] == 0 or rows - after[table] > SHRINK_TOLERANCE * rows)
    ]
    if not shrunk:
        return []
    if not allow:
        raise WouldShrink(
            f"the new v2 would shrink live v2 (schema {live}): {', '.join(shrunk)} rows (more than"
            f" {SHRINK_TOLERANCE:.0%} fewer, or emptied); check the dump, or publish anyway with --allow-shrink"
        )
    return [f"published although v2 shrank (--allow-shrink): {', '.join(shrunk)} rows"]


# The objects of a schema a publish or rollback swaps, oldest first: relations (not indexes, not those a column or
# an extension owns) by name, routines by name(argument types); each with its oid and kind in words.
INVENTORY = """
select c.oid, c.relname::text, case c.relkind when 'v' then 'view' when 'm' then 'materialized view'
    when 'S' then 'sequence' when 'f' then 'foreign table' when 'c' then 'type' else 'table' end
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %(schema)s and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f', 'c') and not c.relispartition
    and not exists (select from pg_depend d
        where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype in ('a', 'e', 'i'))
union all
select p.oid, format('%%s(%%s)', p.proname, pg_get_function_identity_arguments(p.oid)), case p.prokind
    when 'f' then 'function' when 'p' then 'procedure' when 'a' then 'aggregate' else 'window function' end
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname = %(schema)s and not exists (select from pg_depend d
        where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
order by 1
"""
# What else of the app's a swap would leave behind in schema %(live)s: its types, and its triggers (not the
# change capture's, which every publish installs) and indexes on the tables the swap replaces (those %(incoming)s
# holds too).
LEFT_BEHIND = """
select format('type %%I', t.typname)
from pg_type t join pg_namespace n on n.oid = t.typnamespace
where n.nspname = %(live)s and t.typtype in ('e', 'd', 'r', 'm')
    and not exists (select from pg_depend d
        where d.classid = 'pg_type'::regclass and d.objid = t.oid and d.deptype = 'e')
    and not exists (select from pg_type i
        where i.typnamespace = to_regnamespace(%(incoming)s) and i.typname = t.typname)
union all
select format('trigger %%I on %%I', g.tgname, c.relname)
from pg_trigger g join pg_class c on c.oid = g.tgrelid join pg_namespace n on n.oid = c.relnamespace
    join pg_class i on i.relnamespace = to_regnamespace(%(incoming)s) and i.relname = c.relname
where n.nspname = %(live)s and not g.tgisinternal and not starts_with(g.tgname, %(capture)s)
    and not exists (select from pg_trigger ig where ig.tgrelid = i.oid and ig.tgname = g.tgname)
union all
select format('index %%I on %%I', x.relname, c.relname)
from pg_index ix join pg_class x on x.oid = ix.indexrelid join pg_class c on c.oid = ix.indrelid
    join pg_namespace n on n.oid = c.relnamespace
    join pg_class i on i.relnamespace = to_regnamespace(%(incoming)s) and i.relname = c.relname
where n.nspname = %(live)s
    and not exists (select from pg_class ix2 where ix2.relnamespace = i.relnamespace and ix2.relname = x.relname)
order by 1
"""
CARRIED_KINDS = ("table", "sequence", "view", "function", "procedure")


@dataclass
class AppObjects:
    """What the app keeps in live v2 that the migration does not own, carried into the new live schema."""

    tables: list[str]  # moved, with their rows, indexes, triggers and owned sequences
    sequences: list[str]  # standalone ones, moved
    foreign_keys: list[tuple[str, str, str]]  # table, constraint, definition naming the tables it references bare
    statements: list[str]  # CREATE FUNCTION / PROCEDURE / VIEW and ALTER ... OWNER, naming tables bare, in order


def inventory(cur: Cursor, schema: str) -> dict[str, tuple[int, str]]:
    """Name -> (oid, kind) of each object of `schema` a swap moves with it (INVENTORY)."""
    cur.execute(INVENTORY, {"schema": schema})
    return {name: (oid, kind) for oid, name, kind in cur.fetchall()}


def owned_objects(cur: Cursor, schema: str) -> set[str]:
    """The objects the migration put in `schema` when it published it (none when it did not)."""
    cur.execute(
        sql.SQL("select object from {} where run_id = %s").format(meta("owned_objects")), (published_by(cur, schema),)
    )
    return {name for (name,) in cur.fetchall()}


def app_objects(cur: Cursor, live: str, incoming: str, action: str) -> AppObjects:
    """The app's objects in `live`: neither the migration's nor in `incoming` (alembic_version, its tables,
    views and functions). Refuses, naming each, when any of the app's objects cannot be carried over."""
    theirs = set(inventory(cur, incoming)) | owned_objects(cur, live)
    mine = {name: found for name, found in inventory(cur, live).items() if name not in theirs}
    cur.execute(LEFT_BEHIND, {"live": live, "incoming": incoming, "capture": CAPTURE_TRIGGER})
    stuck = [f"{kind} {name}" for name, (_, kind) in mine.items() if kind not in CARRIED_KINDS]
    stuck += [name for (name,) in cur.fetchall()]
    if stuck:
        raise ChangesWouldBeLost(
            f"live v2 (schema {live}) holds objects the migration does not own that {action} cannot carry over:"
            f" {', '.join(stuck)}; move or drop them, then {action} again"
        )
    tables = [name for name, (_, kind) in mine.items() if kind == "table"]
    cur.execute(sql.SQL("set local search_path = {}").format(sql.Identifier(live)))  # definitions name them bare
    cur.execute(
        "select c.relname, k.conname, pg_get_constraintdef(k.oid) from pg_constraint k"
        " join pg_class c on c.oid = k.conrelid join pg_class r on r.oid = k.confrelid"
        " where c.relnamespace = to_regnamespace(%s) and k.contype = 'f' and c.relname = any(%s)"
        " and r.relnamespace = c.relnamespace and not r.relname = any(%s) order by 1, 2",
        (live, tables, tables),
    )
    foreign_keys = cur.fetchall()
    statements = []
    for oid, kind in mine.values():
        if kind in ("function", "procedure"):
            cur.execute("select pg_get_functiondef(%s), %s || ' ' || %s::regprocedure::text, proowner::regrole::text"
                        " from pg_proc where oid = %s", (oid, kind, oid, oid))  # fmt: skip
        elif kind == "view":
            cur.execute(
                "select format('create view %%I%%s as %%s', relname, coalesce(' with (' || array_to_string(reloptions,"
                " ', ') || ')', ''), pg_get_viewdef(oid)), format('view %%I', relname), relowner::regrole::text"
                " from pg_class where oid = %s",
                (oid,),
            )
        else:
            continue
        create, named, owner = cur.fetchone()
        statements += [create, f"alter {named} owner to {owner}"]
    cur.execute("set local search_path to default")
    sequences = [name for name, (_, kind) in mine.items() if kind == "sequence"]
    return AppObjects(tables, sequences, foreign_keys, statements)


def carry_app_objects(cur: Cursor, objects: AppObjects, outgoing: str, live: str) -> None:
    """Move the app's tables (rows and all) from `outgoing` into the new `live`, point their foreign keys at
    the new tables, and re-create its functions and views there, against the new tables."""
    for kind, names in (("table", objects.tables), ("sequence", objects.sequences)):
        for name in names:
            move = sql.SQL("alter {} {} set schema {}")
            cur.execute(move.format(sql.SQL(kind), qualified(outgoing, name), sql.Identifier(live)))
    cur.execute(sql.SQL("set local search_path = {}").format(sql.Identifier(live)))
    for table, constraint, definition in objects.foreign_keys:
        cur.execute(
            sql.SQL("alter table {table} drop constraint {name}, add constraint {name} {definition}").format(
                table=sql.Identifier(table), name=sql.Identifier(constraint), definition=sql.SQL(definition)
            )
        )
    for statement in objects.statements:
        cur.execute(statement)
    cur.execute("set local search_path to default")


def stamp() -> str:
    """UTC time to the microsecond: names of backup schemas and files never collide, and sort by time."""
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")


def publishable_build(cur: Cursor) -> Run:
    """The last build, when it is green, full and not yet published."""
    build = last_run(cur, BUILDS)
    if build.result != "built" or not build.full_build:
        raise lifeos_env.MigrationError(
            f"nothing to publish: the last `dbt {build.command}` (run {build.run_id}) is {build.result}"
            + ("" if build.full_build else ", and not a full build")
            + "; publish follows a green full `dbt build` (scripts/migrate)"
        )
    cur.execute(
        sql.SQL("select max(run_id) from {} where build_run_id = %s and result = 'published'").format(meta("runs")),
        (build.run_id,),
    )
    published_in = cur.fetchone()[0]
    if published_in:
        raise lifeos_env.MigrationError(
            f"nothing to publish: the last `dbt build` (run {build.run_id}) was published by run {published_in};"
            " build again (scripts/migrate)"
        )
    return build


def publish(
    *,
    force: bool = False,
    backup_to: Path | None = None,
    allow_shrink: bool = False,
    app_role: str | None = None,
    lock_wait: float = LOCK_WAIT,
) -> list[str]:
    """Publish the shadow of the last green, full `dbt build` as live v2.

    The app's role is `app_role`, else the one the build recorded. Return notes for the report
    (an allowed shrink, no app role with access)."""
    with run_lock.one_run("publish"):
        with closing(lifeos_env.connect()) as conn, conn.cursor() as cur:
            build = publishable_build(cur)
            run_id = new_run(cur, "publish", build, build_run_id=build.run_id)
        live, shadow = build.schemas["live"], build.schemas["shadow"]
        options = {"force": force, "backup_to": backup_to, "allow_shrink": allow_shrink, "app_role": app_role}
        dump_path, notes = recorded(
            run_id, partial(publish_in, build=build, run_id=run_id, **options), lock_wait, [live]
        )
    console.print(f"published schema {shadow} as live v2 ({live})" + (f"; backup {dump_path}" if dump_path else ""))
    return notes


def publish_in(
    cur: Cursor,
    *,
    build: Run,
    run_id: int,
    force: bool,
    backup_to: Path | None,
    allow_shrink: bool,
    app_role: str | None,
) -> tuple[Path | None, list[str]]:
    """The publish transaction: guards, back up live v2, swap the shadow in; return the backup file and the
    notes for the report."""
    live, shadow = build.schemas["live"], build.schemas["shadow"]
    if not tables(cur, shadow):
        raise lifeos_env.MigrationError(f"the shadow schema {shadow} holds no tables: run `dbt build` again")
    apps = app_objects(cur, live, shadow, "publish")
    hold_live(cur, live, "publish", force, apps.tables, build.run_id)
    notes = refuse_shrink(cur, live, shadow, allow_shrink)
    cur.execute(
        sql.SQL("insert into {} (run_id, object) select %s, unnest(%s::text[])").format(meta("owned_objects")),
        (run_id, list(inventory(cur, shadow))),
    )
    when = stamp()
    dump_path, dump_sha256 = (
        dump_schemas(cur, [live], backup_dir(backup_to), f"{live}_{when}") if holds_objects(cur, live) else (None, None)
    )
    with removed_on_failure(dump_path):
        backup = BACKUP_PREFIX + when
        swap_in(cur, shadow, live, backup, app_role or build.app_role, apps)
        notes += access_warning(cur, live)
        capture_changes(cur, live)
        cur.execute("select oid from pg_namespace where nspname = %s", (live,))
        finish_run(
            cur, run_id, result="published", published_schema_oid=cur.fetchone()[0],
            detail="; ".join([f"the shadow of build run {build.run_id} is live v2 ({live})", *notes]),
            backup_schema=backup if schema_exists(cur, backup) else None,
            dump_path=dump_path and str(dump_path), dump_sha256=dump_sha256, table_counts=row_counts(cur, live),
        )  # fmt: skip
    return dump_path, notes


@contextmanager
def removed_on_failure(path: Path | None) -> Iterator[None]:
    """A backup whose transaction fails is not listed in the ledger: remove it."""
    try:
        yield
    except BaseException:
        if path:
            remove_dump(path)
        raise


def rollback(*, force: bool = False, lock_wait: float = LOCK_WAIT) -> str:
    """Make the newest backup schema live again; the replaced live schema is kept. Return the restored backup."""
    with run_lock.one_run("rollback"):
        with closing(lifeos_env.connect()) as conn, conn.cursor() as cur:
            template = last_run(cur, ANY_RUN)
            backups = schemas_like(cur, BACKUP_PREFIX)
            if not backups:
                raise lifeos_env.MigrationError(f"nothing to roll back to: there is no {BACKUP_PREFIX}* schema")
            run_id = new_run(cur, "rollback", template)
        live = template.schemas["live"]
        work = partial(roll_back_in, backup=backups[0], template=template, run_id=run_id, force=force)
        displaced = recorded(run_id, work, lock_wait, [live, backups[0]])
    console.print(f"rolled back: {backups[0]} is live v2 ({live}) again; the replaced one is kept as {displaced}")
    return backups[0]


def roll_back_in(cur: Cursor, *, backup: str, template: Run, run_id: int, force: bool) -> str:
    """The rollback transaction: guard, swap `backup` in; return the name the replaced live schema keeps."""
    live = template.schemas["live"]
    apps = app_objects(cur, live, backup, "rollback")
    hold_live(cur, live, "rollback", force, apps.tables)
    displaced = ROLLED_BACK_PREFIX + stamp()
    swap_in(cur, backup, live, displaced, template.app_role, apps)
    capture_changes(cur, live)  # a backup from before change capture gets it too
    finish_run(
        cur, run_id, result="rolled back", backup_schema=displaced, table_counts=row_counts(cur, live),
        detail=f"{backup} is live v2 ({live}) again; the replaced live schema is kept as {displaced}",
    )  # fmt: skip
    return displaced


def in_foreign_key_order(cur: Cursor, schema: str, names: list[str]) -> list[str]:
    """`names`, each table after the tables of `schema` its foreign keys reference."""
    cur.execute(
        "select t.relname, r.relname from pg_constraint c"
        " join pg_class t on t.oid = c.conrelid join pg_class r on r.oid = c.confrelid"
        " where c.contype = 'f' and t.relnamespace = %s::regnamespace",
        (sql.Identifier(schema).as_string(cur),),
    )
    graph: dict[str, set[str]] = {name: set() for name in names}
    for child, parent in cur.fetchall():
        if child in graph and parent in graph and child != parent:
            graph[child].add(parent)
    return list(graphlib.TopologicalSorter(graph).static_order())


def column_names(cur: Cursor, schema: str, table: str, *, key: bool = False) -> list[str]:
    """The columns a statement can write (generated ones aside), or with key, the primary key's."""
    cur.execute(
        "select a.attname from pg_attribute a left join pg_index i on i.indrelid = a.attrelid and i.indisprimary"
        " where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''"
        " and (not %s or a.attnum = any(i.indkey)) order by a.attnum",
        (qualified(schema, table).as_string(cur), key),
    )
    return [name for (name,) in cur.fetchall()]


def upsert_statements(cur: Cursor, schema: str, table: str, rows: sql.Composed) -> sql.Composed:
    """Query of one `insert ... on conflict (<primary key>) do update` line per row of the query `rows`:
    a replay adds the rows the app created and puts back the ones it changed."""
    columns, key = column_names(cur, schema, table), column_names(cur, schema, table, key=True)
    return upsert_lines(cur, sql.SQL("quote_ident({})").format(sql.Literal(table)), columns, key, rows)


def upsert_lines(
    cur: Cursor,
    target: sql.Composable,
    columns: list[str],
    key: list[str],
    rows: sql.Composable,
    constants: dict[str, str] | None = None,
    order_by: list[str] | None = None,
) -> sql.Composed:
    """Query of one `insert into <target> ... on conflict (<key>) do update` line per row of the query `rows`
    (`target`: an expression giving the quoted table name): `columns` from the row, and `constants` (column ->
    value as text), the same in every row and only ever inserted, never updated."""
    constants = constants or {}
    listed = sql.SQL(", ").join(map(sql.Identifier, [*columns, *constants]))
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = excluded.{0}").format(sql.Identifier(column)) for column in columns if column not in key
    )
    on_conflict = sql.SQL(" on conflict ({}) do {}").format(
        sql.SQL(", ").join(map(sql.Identifier, key)),
        sql.SQL("update set {}").format(updates) if updates.seq else sql.SQL("nothing"),
    )
    values = [sql.SQL("quote_nullable(t.{})").format(sql.Identifier(column)) for column in columns]
    values += [sql.SQL("quote_literal({}::text)").format(sql.Literal(value)) for value in constants.values()]
    order = (
        sql.SQL(" order by {}").format(sql.SQL(", ").join(map(sql.Identifier, order_by))) if order_by else sql.SQL("")
    )
    return sql.SQL(
        "select format('insert into %s (%s) values (%s)%s;', {}, {}, concat_ws(', ', {}), {}) from ({}) t{}"
    ).format(
        target,
        sql.Literal(listed.as_string(cur)),
        sql.SQL(", ").join(values),
        sql.Literal(on_conflict.as_string(cur) if key else ""),
        rows,
        order,
    )


def export_changes(
    out: Path | None = None, schema: str | None = None, to_v1: bool = False
) -> dict[str, tuple[int, int]]:
    """Write every row of live v2 (or `schema`) the app created, changed or deleted since its publish.

    Into the new private folder `out` (default: changes_<database>_<time> in the backups folder):
    <table>.csv of the rows created or changed as they are now, <table>.deleted.csv of the rows deleted as
    they were (from the change log), both with a header, and changes.sql, one transaction that replays them:
    upserts in foreign-key order, then deletes in the reverse order. With `to_v1`, to_v1.sql instead, the
    same writes in v1's shape for v1's database (write_v1_changes). Return the rows per table: (created or
    changed, deleted).
    """
    with closing(lifeos_env.connect(options=SESSION_OPTIONS)) as conn, conn.cursor() as cur:
        source = schema or last_run(cur, ANY_RUN).schemas["live"]
        if not schema_exists(cur, source):
            raise lifeos_env.MigrationError(f"there is no schema {source} to export from")
        changes = app_changes(cur, source)
        if not changes:
            console.print(f"no rows in schema {source} were created, changed or deleted since it was published")
            return changes
        if to_v1 and not schema_exists(cur, lifeos_env.dbt_var("v1_schema")):
            raise lifeos_env.MigrationError(
                f"there is no restored v1 (schema {lifeos_env.dbt_var('v1_schema')}) to read v1's own columns"
                " from: restore the v1 dump first (scripts/restore_v1.py)"
            )
        folder = private_folder(
            out or backup_dir(None) / f"changes_{os.environ['PGDATABASE']}_{stamp()}",
            "export folder",
            "choose one with --out",
        )
        if any(folder.iterdir()):
            raise lifeos_env.MigrationError(f"the folder {folder} is not empty: export into a new one")
        try:
            if to_v1:
                summary = export_to_v1(conn, source, folder)
            else:
                write_changes(cur, source, changes, folder)
                total = sum(changed + deleted for changed, deleted in changes.values())
                summary = f"wrote {total} rows of schema {source} the app created, changed or deleted to {folder}"
        except OSError as error:
            raise lifeos_env.MigrationError(f"cannot write the export to {folder}: {error.strerror}") from error
    console.print(summary)
    return changes


def export_to_v1(conn: Connection, source: str, folder: Path) -> str:
    """to_v1.sql from the views of the mapping back to v1 over `source` (inverse_models), read in one snapshot
    with the change log while the app goes on writing (write_v1_changes); return the summary line."""
    conn.rollback()
    conn.set_session(isolation_level="REPEATABLE READ")
    try:
        with conn.cursor() as cur:
            return write_v1_changes(cur, source, app_changes(cur, source), inverse_models(cur, source), folder)
    finally:
        conn.rollback()  # it only read; its temporary views go with it


def write_changes(cur: Cursor, source: str, changes: dict[str, tuple[int, int]], folder: Path) -> None:
    """The CSV files, and changes.sql: one transaction that replays them all, or nothing."""
    ordered = in_foreign_key_order(cur, source, list(changes))
    steps = [(table, "changed", f"{table}.csv") for table in ordered if changes[table][0]]
    steps += [(table, "deleted", f"{table}.deleted.csv") for table in reversed(ordered) if changes[table][1]]
    with private_file(folder / "changes.sql", "w") as statements:
        statements.write(f"-- the app's writes to schema {source} after the migration published it\nbegin;\n")
        for table, kind, name in steps:
            query = written_rows(source, table, kind)
            with private_file(folder / name, "w") as csv:
                cur.copy_expert(sql.SQL("copy ({}) to stdout with (format csv, header)").format(query), csv)
            cur.execute(replay_statements(cur, source, table, query, kind))
            statements.writelines(line + "\n" for (line,) in cur.fetchall())
        statements.write("commit;\n")


def written_rows(schema: str, table: str, kind: str) -> sql.Composed:
    """Query of the rows of schema.table the app created or changed (kind 'changed') as they are now, or
    deleted (kind 'deleted') as they were."""
    rows = sql.SQL("select * from ({}) as net where table_name = {} and kind = {}").format(
        net_changes(schema), sql.Literal(table), sql.Literal(kind)
    )
    if kind == "changed":
        return sql.SQL("select t.* from {} t where t.id::text in (select row_id from ({}) as written)").format(
            qualified(schema, table), rows
        )
    return sql.SQL("select r.* from ({}) as written, jsonb_populate_record(null::{}, written.old_row) as r").format(
        rows, qualified(schema, table)
    )


def replay_statements(cur: Cursor, schema: str, table: str, rows: sql.Composed, kind: str) -> sql.Composed:
    """Query of the SQL lines that replay the app's writes: an upsert per created or changed row,
    `delete from <table> where id = ...;` per deleted one."""
    if kind == "deleted":
        return sql.SQL("select format('delete from %I where id = %L;', {}, t.id) from ({}) t").format(
            sql.Literal(table), rows
        )
    return upsert_statements(cur, schema, table, rows)


@dataclass
class InverseModel:
    """One model of the mapping back to v1 (models/to_v1): the v2 table it reads, the v1 table it gives."""

    v2_table: str
    v1_table: str
    view: str  # the temporary view of the export's session that gives its rows
    references: list[str]  # the v1 tables its v1 foreign keys point to (config.meta.v1_references)


def inverse_models(cur: Cursor, source: str) -> dict[str, InverseModel]:
    """The models of the mapping back to v1 (tag to_v1), compiled by dbt (`dbt compile --select tag:to_v1`)
    with the v2 tables of `source` as the marts they read, each created as a temporary view of this session;
    return them by the v2 table each reads. Nothing is written to the database (the shadow and the ledger
    are not touched), no view outlives the export (one over the app's tables would pin the columns it reads),
    and two exports at once do not meet."""
    from dbt.cli.main import dbtRunner  # here: of all the commands, only the export to v1 runs dbt

    arguments = ["--vars", json.dumps({"marts_schema": source}), *lifeos_env.dbt_project_args(), "--quiet"]
    compiled = dbtRunner().invoke(["compile", "--select", f"tag:{TO_V1_TAG}", *arguments])
    if not compiled.success:
        failures = [
            f"{r.node.name}: {r.message}" for r in getattr(compiled.result, "results", []) if r.status == "error"
        ]
        reason = (failures or [str(compiled.exception)])[0].strip().splitlines()[0]
        raise lifeos_env.MigrationError(f"dbt could not compile the mapping back to v1 over schema {source}: {reason}")
    v2_tables = set(tables(cur, source))
    models = {}
    for result in compiled.result.results:
        node = result.node
        (v2_table,) = {name.split(".")[-1] for name in node.depends_on.nodes} & v2_tables  # the mart it inverts
        cur.execute(
            sql.SQL("create temporary view {} as {}").format(sql.Identifier(node.name), sql.SQL(node.compiled_code))
        )
        models[v2_table] = InverseModel(
            v2_table, node.name.removeprefix("v1_"), node.name, node.config.meta["v1_references"]
        )
    return models


def v1_own_columns(cur: Cursor, table: str, mapped: list[str]) -> dict[str, str | None]:
    """The columns of v1 `table` (as restored in schema var v1_schema) that the mapping back does not give,
    each with the value a row written to v1 gets: the one value every row of the restored table holds there
    (Supabase's `user_id default auth.uid()` of a one-person v1), or None when the rows hold NULLs or more
    than one value, or there are no rows: then the insert leaves the column out, and v1's own default (NULL
    without one) fills it, as for a row v1's app inserts."""
    v1_schema = lifeos_env.dbt_var("v1_schema")
    cur.execute("select to_regclass(%s) is not null", (qualified(v1_schema, table).as_string(cur),))
    if not cur.fetchone()[0]:
        raise lifeos_env.MigrationError(f"the restored v1 (schema {v1_schema}) has no table {table}")
    fills = {}
    for column in column_names(cur, v1_schema, table):
        if column not in mapped:
            cur.execute(
                sql.SQL(
                    "select count(*) = count({0}) and count(distinct {0}::text) = 1, min({0}::text) from {1}"
                ).format(sql.Identifier(column), qualified(v1_schema, table))
            )
            shared, value = cur.fetchone()
            fills[column] = value if shared else None
    return fills


@dataclass
class V1Writes:
    """What the export to v1 writes: its SQL lines, and what v1 cannot take, listed."""

    upserts: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    not_representable: list[tuple[str, str, str, str]] = field(default_factory=list)  # v2 table, id, write, why
    blobs: list[tuple[str, str, str, str]] = field(default_factory=list)  # files id, v2 path, bucket, key
    own_columns: list[str] = field(default_factory=list)  # how each column only v1 has is filled, in words


def write_v1_changes(
    cur: Cursor, source: str, changes: dict[str, tuple[int, int]], models: dict[str, InverseModel], folder: Path
) -> str:
    """to_v1.sql: the app's writes in v1's shape (the views of models/to_v1), for v1's database (Supabase:
    its tables in schema public), applied with `psql -f`: one transaction that stops at the first error
    (ON_ERROR_STOP), so a row that breaks one of v1's constraints leaves v1 as it was. Upserts on id in v1's
    foreign-key order (a task's parents before it), then deletes by id in the reverse order. A row v1 cannot
    hold (of a table or a kind only v2 has) is listed in not_representable.csv instead, and each blob v1's
    bucket lacks in blobs_to_upload.csv. Return the summary line."""
    graph = {model.v1_table: set(model.references) for model in models.values()}
    by_v1_table = {model.v1_table: model for model in models.values()}
    ordered = [by_v1_table[name] for name in graphlib.TopologicalSorter(graph).static_order()]
    writes = V1Writes()
    for table in sorted(set(changes) - set(models)):
        for kind in ("changed", "deleted"):
            cur.execute(sql.SQL("{} order by row_id").format(written_ids(source, table, kind)))
            writes.not_representable += [(table, row_id, kind, f"v1 has no table {table}") for (row_id,) in cur]
    for model in ordered:
        if model.v2_table in changes:
            add_v1_upserts(cur, source, model, writes)
    for model in reversed(ordered):
        if model.v2_table in changes:
            cur.execute(
                sql.SQL("select format('delete from %I where id = %L;', {}, row_id) from ({}) d order by 1").format(
                    sql.Literal(model.v1_table),
                    written_ids(source, model.v2_table, "deleted"),
                )
            )
            writes.deletes += [line for (line,) in cur]
    return write_v1_files(writes, source, folder)


def written_ids(source: str, table: str, kind: str) -> sql.Composed:
    """Query of the ids of the rows of source.table the app wrote since its publish, of kind 'changed' or
    'deleted' (net_changes)."""
    return sql.SQL("select row_id from ({}) net where table_name = {} and kind = {}").format(
        net_changes(source), sql.Literal(table), sql.Literal(kind)
    )


def add_v1_upserts(cur: Cursor, source: str, model: InverseModel, writes: V1Writes) -> None:
    """The upserts into v1 of the rows of model.v2_table the app created or changed, as the model gives them
    (parents first: load_order), with v1's own columns filled (v1_own_columns); the rows v1 cannot hold and
    the blobs v1's bucket lacks, listed."""
    columns = column_names(cur, "pg_temp", model.view)
    mapped = [column for column in columns if column not in EXPORT_COLUMNS]
    fills = v1_own_columns(cur, model.v1_table, mapped)
    writes.own_columns += [
        f"{model.v1_table}.{column} = {value!r}, as in every v1 row" if value is not None
        else f"{model.v1_table}.{column}: v1's default"
        for column, value in fills.items()
    ]  # fmt: skip
    rows = sql.SQL("select * from {} t where t.id::text in ({})").format(
        qualified("pg_temp", model.view), written_ids(source, model.v2_table, "changed")
    )
    target = sql.SQL("quote_ident({})").format(sql.Literal(model.v1_table))
    shared = {column: value for column, value in fills.items() if value is not None}
    held = sql.SQL("{} and t.not_representable is null").format(rows)
    cur.execute(upsert_lines(cur, target, mapped, ["id"], held, shared, order_by=["load_order", "id"]))
    writes.upserts += [line for (line,) in cur]
    cur.execute(sql.SQL("select id::text, not_representable from ({} and t.not_representable is not null) t"
                        " order by 1").format(rows))  # fmt: skip
    writes.not_representable += [(model.v2_table, row_id, "changed", reason) for row_id, reason in cur]
    if "upload_blob_from" in columns:
        cur.execute(sql.SQL("select id::text, upload_blob_from, {}, storage_path from ({}) t"
                            " where upload_blob_from is not null order by 1").format(
            sql.Literal(lifeos_env.dbt_var("storage_bucket")), held))  # fmt: skip
        writes.blobs += cur.fetchall()


def write_v1_files(writes: V1Writes, source: str, folder: Path) -> str:
    """to_v1.sql, and the listings when they list anything; return the summary line."""
    for name, header, listed in (
        ("not_representable.csv", ("v2_table", "id", "write", "reason"), writes.not_representable),
        ("blobs_to_upload.csv", ("file_id", "v2_path", "bucket", "key"), writes.blobs),
    ):
        if listed:
            with private_file(folder / name, "w") as listing:
                csv.writer(listing).writerows([header, *listed])
    with private_file(folder / "to_v1.sql", "w") as statements:
        statements.write(
            f"-- The app's writes to v2 (schema {source} of database {os.environ['PGDATABASE']}) since it was"
            f" published, in v1's shape ({datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC).\n"
            f"-- Apply to v1 (its tables in schema {V1_TABLES_SCHEMA}, as search_path says below):"
            "  psql <v1 connection> -f to_v1.sql\n"
            "-- One transaction: psql stops at the first statement v1 refuses, and nothing is applied.\n"
            f"-- v1's own columns: {'; '.join(sorted(set(writes.own_columns))) or 'none beyond the mapped ones'}.\n"
            f"-- Not written, as v1 cannot hold them: {len(writes.not_representable)} rows (not_representable.csv).\n"
            f"-- Blobs v1's bucket does not hold: {len(writes.blobs)} (blobs_to_upload.csv).\n"
            f"\\set ON_ERROR_STOP on\nbegin;\nset local search_path = {V1_TABLES_SCHEMA};\n"
        )
        statements.writelines(line + "\n" for line in writes.upserts + writes.deletes)
        statements.write("commit;\n")
    summary = (
        f"wrote the app's writes to schema {source} in v1's shape to {folder / 'to_v1.sql'}:"
        f" {len(writes.upserts)} rows to insert or update, {len(writes.deletes)} to delete"
    )
    if writes.not_representable:
        summary += f"; {len(writes.not_representable)} rows v1 cannot hold are listed in not_representable.csv"
    if writes.blobs:
        summary += f"; upload the {len(writes.blobs)} blobs of blobs_to_upload.csv to their bucket"
    return summary


def kept_in(cur: Cursor, schema: str) -> str | None:
    """The dump the ledger lists for backup schema `schema` (taken when it was replaced), if the file is intact."""
    cur.execute(
        sql.SQL(
            "select dump_path, dump_sha256 from {} where backup_schema = %s and dump_path is not null"
            " order by run_id desc limit 1"
        ).format(meta("runs")),
        (schema,),
    )
    found = cur.fetchone()
    return found[0] if found and intact(Path(found[0]), found[1]) else None


def intact(dump: Path, checksum: str) -> bool:
    """Whether the dump (file or folder) is there with the checksum the ledger lists."""
    try:
        return dump.exists() and sha256(dump) == checksum
    except OSError:  # a folder in the folder, a file we may not read
        return False


def cleanup_plan(cur: Cursor, schemas: dict[str, str]) -> dict[str, str | None]:
    """Each schema clean-up would drop, with what keeps its rows; None: nothing yet, dump it first."""
    rebuilt = "rebuilt by dbt build"
    staging = {schemas["v1"]: "a copy of the v1 source", schemas["work"]: rebuilt, schemas["shadow"]: rebuilt}
    plan: dict[str, str | None] = {
        name: note for name, note in (staging | {TEST_FAILURES_SCHEMA: rebuilt}).items() if schema_exists(cur, name)
    }
    for name in schemas_like(cur, BACKUP_PREFIX) + schemas_like(cur, ROLLED_BACK_PREFIX):
        dump = kept_in(cur, name)
        plan[name] = f"kept in {dump}" if dump else None if holds_objects(cur, name) else "empty"
    return plan


def listing(plan: dict[str, str | None]) -> str:
    return ", ".join(f"{name} ({kept or 'dumped first'})" for name, kept in plan.items())


def confirm(question: str) -> None:
    try:
        answer = input(question)
    except EOFError:
        raise lifeos_env.MigrationError("there is no terminal to ask on: pass --yes to clean up") from None
    if answer.strip() != "yes":
        raise lifeos_env.MigrationError("clean-up cancelled; nothing was dropped")


def cleanup(*, yes: bool = False, backup_to: Path | None = None, lock_wait: float = LOCK_WAIT) -> dict[str, str]:
    """Drop the v1 copy, v2_work, dbt's test failures, the shadow and every backup schema, once v2 is live.

    A backup or rolled-back schema whose rows no intact dump of the ledger holds is dumped first.
    Return each schema dropped, with what keeps its rows.
    """
    with run_lock.one_run("cleanup"):
        with closing(lifeos_env.connect()) as conn, conn.cursor() as cur:
            template = last_run(cur, ANY_RUN)
            schemas = template.schemas
            if not tables(cur, schemas["live"]):
                raise lifeos_env.MigrationError(
                    f"live v2 (schema {schemas['live']}) is empty: publish before cleaning up"
                )
            plan = cleanup_plan(cur, schemas)
            if not plan:
                console.print("nothing to clean up")
                return {}
            if not yes:
                confirm(f"Drop schemas {listing(plan)} with everything in them? Type yes to go on: ")
            run_id = new_run(cur, "cleanup", template)
        done = recorded(
            run_id, partial(drop_schemas, plan=plan, run_id=run_id, backup_to=backup_to), lock_wait, list(plan)
        )
    console.print(f"dropped {listing(done)}")
    return done


def drop_schemas(cur: Cursor, *, plan: dict[str, str | None], run_id: int, backup_to: Path | None) -> dict[str, str]:
    """The clean-up transaction: dump what no dump keeps yet, then drop the schemas of `plan`."""
    unkept = [name for name, kept in plan.items() if kept is None]
    dump_path, dump_sha256 = (
        dump_schemas(cur, unkept, backup_dir(backup_to), f"cleanup_{stamp()}") if unkept else (None, None)
    )
    with removed_on_failure(dump_path):
        done = {name: kept or f"kept in {dump_path}" for name, kept in plan.items()}
        for name in done:
            cur.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(name)))
        lifeos_env.create_meta_tables(cur, "changes")
        cur.execute(
            sql.SQL("delete from {} where schema_oid not in (select oid from pg_namespace)").format(meta("changes"))
        )
        finish_run(
            cur, run_id, result="cleaned up", detail="dropped " + listing(done),
            dump_path=dump_path and str(dump_path), dump_sha256=dump_sha256,
        )  # fmt: skip
    return done


def add_lock_wait(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lock-wait",
        type=float,
        default=LOCK_WAIT,
        metavar="SECONDS",
        help=f"give up after this long waiting for the app's locks, in tries of {LOCK_TRY} (default {LOCK_WAIT:g})",
    )


def restore_backup(dump: Path, database: str) -> dict[str, int]:
    """Restore a backup or clean-up dump (a folder, or the file of an older backup) into the new database
    `database` on the target server, in one transaction, then rebuild the derived tables the dump holds
    without rows (refresh_search_index()); return the rows per restored table. A restore that fails leaves no
    database behind."""
    if not dump.exists():
        raise lifeos_env.MigrationError(f"there is no backup {dump}")
    with closing(lifeos_env.connect(dbname="postgres")) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from pg_database where datname = %s", (database,))
        if cur.fetchone()[0]:
            raise lifeos_env.MigrationError(f"database {database} already exists: restore into a new one")
        major = server_major(conn)
    # The dump creates its schemas, `public` too, which every new database already has: leave that one out, and
    # the triggers that record the app's writes in the ledger (scripts/publish capture_changes): not restored.
    listed = [
        line
        for line in run_client("pg_restore", "--list", str(dump)).splitlines()
        if line.split()[3:6] != ["SCHEMA", "-", "public"] and f" {CAPTURE_TRIGGER}_" not in line
    ]
    lifeos_env.create_database(database)
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".list") as listing:
            listing.write("\n".join(listed) + "\n")
            listing.flush()
            run_client(
                "pg_restore", "--single-transaction", "--exit-on-error", f"--use-list={listing.name}",
                f"--dbname={database}", str(dump), major=major,
            )  # fmt: skip
        with closing(lifeos_env.connect(dbname=database)) as conn:
            rebuild_derived(conn)
    except BaseException:
        lifeos_env.drop_database(database)
        raise
    with closing(lifeos_env.connect(dbname=database)) as conn, conn.cursor() as cur:
        cur.execute(
            "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where c.relkind in ('r', 'p') and n.nspname !~ '^(pg_|information_schema)'"
        )
        counts = {}
        for schema, table in cur.fetchall():
            cur.execute(sql.SQL("select count(*) from {}").format(qualified(schema, table)))
            counts[f"{schema}.{table}"] = cur.fetchone()[0]
    console.print(f"restored {dump} into database {database}: {len(counts)} tables, {sum(counts.values())} rows")
    return counts


def rebuild_derived(conn: Connection) -> None:
    """Rebuild the rows of every derived table of the database (the backups leave them out) with its refresh
    function, refresh_<table>() beside it, one transaction each (as the README asks of a refresh)."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "select n.nspname, p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
            " where p.proname = any(%s) and p.pronargs = 0 order by 1, 2",
            ([f"refresh_{table}" for table in DERIVED],),
        )
        refreshes = cur.fetchall()
    for schema, function in refreshes:
        with conn, conn.cursor() as cur:
            cur.execute(sql.SQL("select {}()").format(qualified(schema, function)))


def add_app_role_option(parser: argparse.ArgumentParser, description: str) -> None:
    """The option --app-role ROLE of scripts/publish and scripts/migrate, by default LIFEOS_APP_ROLE."""
    role = os.environ.get("LIFEOS_APP_ROLE") or None
    parser.add_argument("--app-role", metavar="ROLE", default=role, help=description)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    publishing = commands.add_parser("publish", help="publish the shadow of the last green dbt build")
    publishing.add_argument("--force", action="store_true", help="replace rows the app changed (they are backed up)")
    publishing.add_argument(
        "--allow-shrink", action="store_true", help="publish even when a table would lose rows or be emptied"
    )
    add_app_role_option(publishing, "the app's role to grant (LIFEOS_APP_ROLE; default: the one the build recorded)")
    publishing.add_argument(
        "--backup-dir",
        type=Path,
        help=f"folder of the pg_dump backups (LIFEOS_BACKUP_DIR, default {DEFAULT_BACKUP_DIR})",
    )
    rolling = commands.add_parser("rollback", help="make the newest backup schema live again")
    rolling.add_argument("--force", action="store_true", help="roll back over rows the app changed")
    for waiting in (publishing, rolling):
        add_lock_wait(waiting)
    exporting = commands.add_parser("export-changes", help="write the rows the app created or changed, as CSV and SQL")
    exporting.add_argument("--out", type=Path, help="folder to write (default: under the backups folder)")
    exporting.add_argument("--schema", help="schema to export from (default: live v2)")
    exporting.add_argument(
        "--to-v1", action="store_true", help="write them as SQL in v1's shape, for v1's database (to_v1.sql)"
    )
    cleaning = commands.add_parser("cleanup", help="drop the staging, shadow and backup schemas")
    cleaning.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    cleaning.add_argument("--backup-dir", type=Path, help="folder of the dumps of backup schemas no dump holds yet")
    add_lock_wait(cleaning)
    restoring = commands.add_parser("restore-backup", help="restore a backup dump into a new database")
    restoring.add_argument(
        "dump",
        type=Path,
        metavar="DUMP",
        help="a dump the ledger lists (dump_path): a folder, or an older backup's file",
    )
    restoring.add_argument("--into", required=True, metavar="DATABASE", help="the new database to restore into")
    args = parser.parse_args(argv)
    lifeos_env.stop_on_signals()
    try:
        lifeos_env.ensure_target()
        if args.command == "publish":
            notes = publish(
                force=args.force, backup_to=args.backup_dir, allow_shrink=args.allow_shrink, app_role=args.app_role,
                lock_wait=args.lock_wait,
            )  # fmt: skip
            for note in notes:  # scripts/migrate prints them with its report instead (report.note)
                console.print(f"[yellow]note: {note}[/yellow]", markup=True, highlight=False)
        elif args.command == "rollback":
            rollback(force=args.force, lock_wait=args.lock_wait)
        elif args.command == "export-changes":
            export_changes(args.out, args.schema, args.to_v1)
        elif args.command == "cleanup":
            cleanup(yes=args.yes, backup_to=args.backup_dir, lock_wait=args.lock_wait)
        else:
            restore_backup(args.dump, args.into)
    except lifeos_env.MigrationError as error:
        console.print(f"[red]{args.command} failed: {error}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
