"""A recorded transaction in short lock tries: each lock is waited for LOCK_TRY at most, so the app's queries
never queue behind the migration for long; a busy lock rolls the transaction back and tries again, for up
to --lock-wait seconds, and a failure is recorded in the run's ledger row."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from datetime import UTC
from typing import TypeVar

import psycopg2
import psycopg2.errors
import tenacity
from psycopg2 import sql

import lifeos_env
from lifeos.catalog import Connection, Cursor
from lifeos.guard import ChangesWouldBeLost
from lifeos.runs import finish_run
from lifeos.settings import Settings

T = TypeVar("T")
LOCK_TRY = "500ms"  # the longest one try waits for a lock: app queries queued behind it wait no longer
LOCK_WAIT = 30.0  # seconds of tries before giving up (--lock-wait)
# Exported rows are written in their text form, which must not depend on the client's settings.
SESSION_OPTIONS = (
    "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=1 -c bytea_output=hex"
)


class LockBusy(lifeos_env.MigrationError):
    """A lock was not free within one try (LOCK_TRY)."""


def recorded(settings: Settings, run_id: int, work: Callable[[Cursor], T], lock_wait: float, schemas: list[str]) -> T:
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
                finish_run(cur, settings, run_id, result=result, detail=message)
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
