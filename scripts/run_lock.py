"""One migration run at a time: an advisory lock on the database, a lock file on the storage root.

scripts/migrate, the files step, publish, rollback and clean-up take them. A second run fails at once with
a line naming the first (command, pid, host, start time). Both locks belong to the process that holds them
(a server session, an open file), so they end with it, after kill -9 too: no stale lock is ever left. The
ledger rows of a run that ended without finishing (killed, stopped by a signal) are marked `interrupted`
(runs.close_open_runs).
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg2.extensions

import lifeos_env
from lifeos import runs
from lifeos.settings import Settings

LOCK_KEY = 0x4C6966654F5332  # "LifeOS2": the session-level advisory lock of a run
LOCK_FILE = ".lifeos-run.lock"  # <parent of the root>/.<root name>.lifeos-run.lock
_held: set[str] = set()  # the locks this process holds: a nested step (migrate -> publish) goes on under them


class AlreadyRunning(lifeos_env.MigrationError):
    """Another run holds the database or the storage root."""


def holder_name(command: str) -> str:
    return f"lifeos {command} pid {os.getpid()} on {socket.gethostname()}"


@contextmanager
def one_run(settings: Settings, command: str, storage_root: Path | None = None) -> Iterator[None]:
    """Hold the database (and the storage root, if given) for the run `command`, or fail naming the holder."""
    with ExitStack() as stack:
        if "database" not in _held:
            stack.enter_context(database_lock(settings, command))
        if storage_root and "storage" not in _held:
            stack.enter_context(storage_lock(command, storage_root))
        yield


@contextmanager
def database_lock(settings: Settings, command: str) -> Iterator[None]:
    conn = lifeos_env.connect(application_name=holder_name(command)[:63])
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("select pg_try_advisory_lock(%s)", (LOCK_KEY,))
            if not cur.fetchone()[0]:
                raise AlreadyRunning(
                    f"another run is using database {settings.database}: {database_holder(cur)}; wait for it to end"
                )
            runs.close_open_runs(cur, settings, "killed before it finished")  # under the lock, nothing else runs
            _held.add("database")
            try:
                yield
            except lifeos_env.Interrupted as stop:
                runs.close_open_runs(cur, settings, str(stop))
                raise
            finally:
                _held.discard("database")
    finally:
        conn.close()


def database_holder(cur: psycopg2.extensions.cursor) -> str:
    cur.execute(
        "select a.application_name, a.backend_start from pg_locks l join pg_stat_activity a on a.pid = l.pid"
        " where l.locktype = 'advisory' and l.granted and l.objsubid = 1"
        " and l.database = (select oid from pg_database where datname = current_database())"
        " and (l.classid::bigint << 32 | l.objid::bigint) = %s",
        (LOCK_KEY,),
    )
    found = cur.fetchone()
    return f"{found[0]}, started {found[1].astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if found else "it just ended"


@contextmanager
def storage_lock(command: str, root: Path) -> Iterator[None]:
    """Hold the storage root through its lock file, which sits beside the root (never among the blobs)."""
    root = Path(os.path.abspath(root))
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        lock = (root.parent / f".{root.name}{LOCK_FILE}").open("a+")
    except OSError as error:
        raise lifeos_env.MigrationError(
            f"storage root {root}: cannot lock it ({error.strerror}); choose another --storage-root"
        ) from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "a run that just ended"
            raise AlreadyRunning(
                f"another run is using the storage root {root}: {holder}; wait for it to end"
            ) from None
        lock.truncate(0)
        lock.write(f"{holder_name(command)}, started {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC\n")
        lock.flush()
        _held.add("storage")
        try:
            yield
        finally:
            _held.discard("storage")
            lock.truncate(0)
