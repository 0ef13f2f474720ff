"""Backups: private folders and files, pg_dump of live v2 (directory format, parallel jobs, read back and
checksummed), and the restore of a dump into a new database with its derived tables rebuilt."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import tenacity
from psycopg2 import sql

import lifeos_env
from lifeos.catalog import DERIVED, Connection, Cursor, qualified, tables
from lifeos.console import console
from lifeos.guard import CAPTURE_TRIGGER
from lifeos.short_tries import LOCK_TRY, LockBusy

BACKUP_PREFIX = "v2_backup_"
ROLLED_BACK_PREFIX = "v2_rolledback_"


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


def backup_dir(folder: Path) -> Path:
    """The backups folder `folder` (--backup-dir, else the settings' backup_dir), made private."""
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
    path = folder / f"{cur.connection.info.dbname}_{name}.dump"
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


def fingerprint(cur: Cursor, schema: str) -> dict[str, str]:
    """Per table of `schema` (derived ones aside), its rows and a sum of their hashes, in any order: what its dump
    holds when taken in the same transaction, and what clean-up compares a kept schema with before it drops it.
    A row's text depends on the session's settings: both run with short_tries' SESSION_OPTIONS."""
    found = {}
    for table in tables(cur, schema):
        if table not in DERIVED:
            cur.execute(
                sql.SQL(
                    "select count(*) || ':' || coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint), 0)"
                    " from {} t"
                ).format(qualified(schema, table))
            )
            found[table] = cur.fetchone()[0]
    return found


def changed_tables(cur: Cursor, schema: str, dumped: dict[str, str]) -> list[str]:
    """The tables of `schema` whose rows are not those it held when dumped (`dumped`, its fingerprint then)."""
    now = fingerprint(cur, schema)
    return sorted(table for table in set(now) | set(dumped) if now.get(table) != dumped.get(table))


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


def stamp() -> str:
    """UTC time to the microsecond: names of backup schemas and files never collide, and sort by time."""
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")


@contextmanager
def removed_on_failure(path: Path | None) -> Iterator[None]:
    """A backup whose transaction fails is not listed in the ledger: remove it."""
    try:
        yield
    except BaseException:
        if path:
            remove_dump(path)
        raise


def restore_backup(dump: Path, database: str) -> dict[str, int]:
    """Restore a backup or clean-up dump (a folder, or the file of an older backup) into the new database
    `database` on the target server, in one transaction, then rebuild the derived tables the dump holds
    without rows (refresh_search_index()); return the rows per restored table. A restore that fails leaves no
    database behind."""
    if "=" in database or "://" in database:  # pg_restore and libpq would read it as a connection string
        raise lifeos_env.MigrationError(
            f"--into takes a database name, not a connection string or URI: {database}; the target server is the"
            " one the PG* variables name"
        )
    if not dump.exists():
        raise lifeos_env.MigrationError(f"there is no backup {dump}")
    with closing(lifeos_env.connect(dbname="postgres")) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from pg_database where datname = %s", (database,))
        if cur.fetchone()[0]:
            raise lifeos_env.MigrationError(f"database {database} already exists: restore into a new one")
        major = server_major(conn)
    # The dump creates its schemas, `public` too, which every new database already has: leave that one out, and
    # the triggers that record the app's writes in the ledger (lifeos/guard.py capture_changes): not restored.
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
    function, refresh_<table>() beside it, one transaction each (as docs/cutover.md asks of a refresh)."""
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
