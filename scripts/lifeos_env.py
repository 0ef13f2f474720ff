"""Resolve the target PostgreSQL: the libpq PG* variables, or the embedded default.

When PGHOST is unset, an embedded PostgreSQL 16 from the `pgserver` wheel is
started with its data in the project-local, git-ignored `.pgdata/` folder, and
the PG* variables are pointed at it. Every script and dbt read only PG*.

Run as a command it prints `export` lines, so a shell can use plain dbt:
    eval "$(python scripts/lifeos_env.py)"
"""

from __future__ import annotations

import os
import shlex
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_DATA = ROOT / ".pgdata"
DEFAULT_DATABASE = "lifeos_dev"


class MigrationError(Exception):
    """A failure that is reported to the user as one clear line."""


def ensure_target() -> dict[str, str]:
    """Make sure the target database exists and answers; return the PG* variables."""
    if not os.environ.get("PGHOST"):
        with warnings.catch_warnings():  # pgserver warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pgserver  # imported lazily: only the embedded default needs it

        server = pgserver.get_server(EMBEDDED_DATA, cleanup_mode=None)
        info = server.get_postmaster_info()
        os.environ["PGHOST"] = str(info.socket_dir)
        os.environ["PGPORT"] = str(info.port)
        os.environ["PGUSER"] = "postgres"
        os.environ.pop("PGPASSWORD", None)
    os.environ.setdefault("PGDATABASE", DEFAULT_DATABASE)
    create_database(os.environ["PGDATABASE"])
    return {k: v for k, v in os.environ.items() if k.startswith("PG")}


def create_database(name: str) -> None:
    """Create database `name` on the target server unless it exists."""
    conn = psycopg2.connect(dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
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


def connect(**kwargs: str) -> psycopg2.extensions.connection:
    """A connection to the target database (the PG* variables)."""
    return psycopg2.connect(**kwargs)


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
