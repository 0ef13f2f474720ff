"""Fixtures: every test runs against a real PostgreSQL server.

The server is the one the PG* variables name, or the embedded PostgreSQL 16
when PGHOST is unset (scripts/test runs the suite against both). Each fixture
database is new and is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg2
import psycopg2.extensions
import pytest

import lifeos_env
import migrate
from lifeos_env import drop_database


def new_database() -> str:
    name = f"lifeos_test_{uuid.uuid4().hex[:12]}"
    lifeos_env.create_database(name)
    return name


@pytest.fixture(scope="session", autouse=True)
def target_server(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The server under test; blobs and backups of the whole session go to a temporary folder."""
    sandbox = tmp_path_factory.mktemp("lifeos")
    os.environ["LIFEOS_STORAGE_ROOT"] = str(sandbox / "files")
    os.environ["LIFEOS_BACKUP_DIR"] = str(sandbox / "backups")
    return lifeos_env.ensure_target()


@pytest.fixture
def fresh_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty database of its own, named by PGDATABASE for the test."""
    name = new_database()
    monkeypatch.setenv("PGDATABASE", name)
    yield name
    drop_database(name)


@pytest.fixture(scope="session")
def migrated_sample() -> Iterator[str]:
    """A database holding the sample migrated once by scripts/migrate, shared read-only."""
    name = new_database()
    previous = os.environ["PGDATABASE"]
    os.environ["PGDATABASE"] = name
    try:
        assert migrate.main(["--sample"]) == 0
    finally:
        os.environ["PGDATABASE"] = previous
    yield name
    drop_database(name)


@pytest.fixture
def sample_db(migrated_sample: str) -> Iterator[psycopg2.extensions.cursor]:
    """A cursor on the migrated sample, in a transaction that is rolled back."""
    conn = psycopg2.connect(dbname=migrated_sample)
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.rollback()
        conn.close()
