"""Property tests of the restore's invariant (docs/restore.md), on real pg_dump output.

A restore either reproduces every row exactly, as PostgreSQL itself reads the dump, or fails with a
one-line error within a time limit and leaves v1 as it was. It never exits 0 with different data.
Each test runs a bounded number of random examples, so the suite stays fast.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg2 import sql
from test_restore import copy_out, fingerprint, query

import lifeos_env
import restore_v1
from lifeos.restore import archive
from lifeos.settings import load as load_settings

pytestmark = pytest.mark.both_servers  # dumps by the server's own pg_dump, restored into that server

# pg_dump's output formats: name -> its options
FORMATS = {
    "plain": ["--format=plain"],
    "inserts": ["--format=plain", "--inserts"],
    "column-inserts": ["--format=plain", "--column-inserts", "--rows-per-insert=3"],
    "custom": ["--format=custom"],
    "tar": ["--format=tar"],
    "directory": ["--format=directory"],
}
PLAIN = ["plain", "inserts", "column-inserts"]
TIME_LIMIT = 60  # seconds a restore may take, hostile input included; the watchdog stops pg_restore sooner
EXAMPLES = settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Text that is hard to carry through COPY and SQL literals: tabs, newlines, backslashes, quotes, dollar
# quotes, COPY's end marker, unicode (NUL is no valid PostgreSQL text, so never generated).
HARD = ["\t", "\n", "\r", "\\", "\\.", "'", "''", '"', "$$", ";", "--", "/*", "\\N", "é", "🎉", "\u200b", "E'",
        "\n\\item ", "\n\\.\n", "\n\\restrict x\n"]  # fmt: skip
CHARACTERS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")  # text PostgreSQL can hold
TEXT = st.lists(st.one_of(st.sampled_from(HARD), st.text(CHARACTERS, max_size=8)), max_size=6).map("".join)
NOTES = st.lists(
    st.tuples(st.uuids(), TEXT, st.one_of(st.none(), TEXT), st.lists(TEXT, max_size=3)),
    min_size=1,
    max_size=6,
    unique_by=lambda row: row[0],
)
STATEMENTS = [
    "\\.",
    "SELECT 1;",
    "DELETE FROM public.notes;",
    "SET standard_conforming_strings = off;",
    "INSERT INTO public.notes (id, title) VALUES ('00000000-0000-4000-8000-000000000001', 'x');",
    "COPY public.notes (id, title) FROM stdin;",
    "CREATE TABLE public.notes (id uuid);",
]


def public_tables() -> list[restore_v1.Table]:
    return [table for table in restore_v1.contract().values() if table.schema == "public"]


def v1_shaped(database: str) -> None:
    """The 11 public v1 tables, empty, with primary keys, and a table outside the contract holding hard rows
    (the restore skips its data, but reads it like any other)."""
    lifeos_env.create_database(database)
    for table in public_tables():
        columns = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in table.expected.items()]
        query(database, sql.SQL("create table public.{} ({}, primary key (id))").format(
            sql.Identifier(table.name), sql.SQL(", ").join(columns)))  # fmt: skip
    query(database, "create table public.audit (id int, event text, at date)")
    for n, hard in enumerate(HARD):
        query(database, "insert into public.audit values (%s, %s, '2025-01-01')", (n, hard))


@pytest.fixture(scope="module")
def databases() -> Iterator[tuple[str, str]]:
    """A v1-shaped source database and a target for the restores."""
    source, target = (f"lifeos_test_{role}_{uuid.uuid4().hex[:8]}" for role in ("source", "target"))
    v1_shaped(source)
    lifeos_env.create_database(target)
    try:
        with lifeos_env.using_database(target):
            yield source, target
    finally:
        for name in (source, target):
            lifeos_env.drop_database(name)


def server_client(program: str, database: str) -> str:
    """The client of the server's own major version: its dumps restore on that server without new settings."""
    return lifeos_env.pg_client(program, int(query(database, "show server_version_num")[0][0]) // 10000)


def load_notes(source: str, notes: list[tuple[uuid.UUID, str, str | None, list[str]]]) -> None:
    query(source, "truncate public.notes")
    for row_id, title, body, tags in notes:
        query(source, "insert into public.notes (id, title, body, tags) values (%s, %s, %s, %s)",
              (str(row_id), title, body, tags))  # fmt: skip


def pg_dump(source: str, kind: str, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{kind}.dump"
    subprocess.run([server_client("pg_dump", source), *FORMATS[kind], "--file", str(path), source], check=True)
    return path


def tables_of(database: str, schema: str) -> dict[str, str]:
    """Each public v1 table as sorted COPY text, its columns as the restore keeps them."""
    return {table.name: copy_out(database, schema, table.name, list(table.expected)) for table in public_tables()}


def restored(dump: Path) -> tuple[dict[str, int] | None, str]:
    """Restore `dump` into the target; (row counts, "") or (None, the one-line error). Always within TIME_LIMIT."""
    start = time.monotonic()
    try:
        return restore_v1.restore(load_settings(), dump), ""
    except lifeos_env.MigrationError as error:
        return None, str(error)
    finally:
        assert time.monotonic() - start < TIME_LIMIT


@given(notes=NOTES, kind=st.sampled_from(list(FORMATS)))
@EXAMPLES
def test_random_text_survives_every_dump_format(
    notes: list[tuple[uuid.UUID, str, str | None, list[str]]], kind: str, databases: tuple[str, str], tmp_path: Path
) -> None:
    source, target = databases
    load_notes(source, notes)
    counts, error = restored(pg_dump(source, kind, tmp_path / uuid.uuid4().hex))
    assert counts is not None, error
    assert counts["notes"] == len(notes)
    assert tables_of(target, "v1") == tables_of(source, "public")


def postgres_reads(dump: Path, kind: str, database: str) -> bool:
    """Restore `dump` as PostgreSQL's own clients do (psql, pg_restore), in one transaction; True when they succeed."""
    if kind in PLAIN:
        command = [server_client("psql", database), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
                   "-f", str(dump), "-d", database]  # fmt: skip
    else:
        command = [server_client("pg_restore", database), "--exit-on-error", "--single-transaction",
                   "-d", database, str(dump)]  # fmt: skip
    try:
        return subprocess.run(command, capture_output=True, timeout=TIME_LIMIT).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def data_lines(lines: list[bytes]) -> list[int]:
    """Where the rows are: COPY blocks and INSERTs, each with the line before it (most lines are DDL and comments)."""
    inside, found = False, []
    for number, line in enumerate(lines):
        if line.startswith((b"COPY ", b"INSERT ", b"\t(", b"\\.")) or inside:
            found += [max(number - 1, 0), number]
        inside = (inside or line.startswith(b"COPY ")) and not line.startswith(b"\\.")
    return found


# A corruption: (format, how, where in the file or among its data lines (0 to 1), among the data lines?, statement)
Corruption = tuple[str, str, float, bool, str]
CORRUPTIONS = st.tuples(
    st.sampled_from(list(FORMATS)),
    st.sampled_from(["truncate", "drop", "duplicate", "insert"]),
    st.floats(0, 1, exclude_max=True),
    st.booleans(),
    st.sampled_from(STATEMENTS),
)


def spoil(dump: Path, corruption: Corruption, out: Path) -> tuple[Path, str]:
    """A copy of `dump` spoiled as `corruption` says (archives are only truncated); and what was done."""
    kind, how, where, among_data, statement = corruption
    files = sorted(dump.iterdir()) if dump.is_dir() else [dump]
    victim = files[int(where * len(files))]  # one file of a directory archive
    data = victim.read_bytes()
    lines = data.splitlines(keepends=True)
    rows = data_lines(lines)
    at = rows[int(where * len(rows))] if among_data and rows else int(where * len(lines))
    if how == "truncate" or kind not in PLAIN:
        spoiled, what = data[: int(where * len(data))], f"{victim.name} truncated at byte {int(where * len(data))}"
    elif how == "drop":
        spoiled, what = b"".join(lines[:at] + lines[at + 1 :]), f"line {at} dropped"
    elif how == "duplicate":
        spoiled, what = b"".join(lines[: at + 1] + lines[at:]), f"line {at} duplicated"
    else:
        spoiled, what = b"".join([*lines[:at], statement.encode() + b"\n", *lines[at:]]), f"{statement!r} at line {at}"
    copy = out / dump.name
    if dump.is_dir():
        copy.mkdir()
        for file in files:
            (copy / file.name).write_bytes(spoiled if file == victim else file.read_bytes())
    else:
        copy.write_bytes(spoiled)
    return copy, f"{kind}: {what}"


BaseDumps = tuple[dict[str, Path], dict[str, str]]


@pytest.fixture(scope="module")
def base_dumps(databases: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> BaseDumps:
    """Dumps, in every format, of notes holding hard values, and the tables as restored from them (before each
    corruption, v1 exists)."""
    source, _ = databases
    notes = [
        (uuid.UUID(int=n + 1), f"title {n}{hard}", f"body\n{hard}\t{n}", [hard, "b"]) for n, hard in enumerate(HARD)
    ]
    load_notes(source, notes)
    out = tmp_path_factory.mktemp("base_dumps")
    dumps = {kind: pg_dump(source, kind, out) for kind in FORMATS}
    assert restored(dumps["plain"])[0] is not None
    return dumps, tables_of(databases[1], "v1")


@given(corruption=CORRUPTIONS)
@example(corruption=("plain", "duplicate", 0.5, True, ""))  # a row twice: the dump's primary key forbids it
@example(corruption=("inserts", "insert", 0.5, True, STATEMENTS[4]))  # a second data section
@example(corruption=("plain", "insert", 0.9, True, STATEMENTS[2]))  # DELETE after the data
@example(corruption=("plain", "insert", 0.5, True, "\\."))  # COPY's end marker inside its data
@example(corruption=("plain", "drop", 0.5, True, ""))  # a row less, as PostgreSQL reads it too
@example(corruption=("tar", "truncate", 0.6, False, ""))  # pg_restore spins on it
@settings(EXAMPLES, max_examples=18)
def test_a_corrupted_dump_restores_as_postgresql_reads_it_or_fails_leaving_v1(
    corruption: Corruption, base_dumps: BaseDumps, databases: tuple[str, str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(archive, "STALL_SECONDS", 2.0)
    _, target = databases
    kind = corruption[0]
    out = tmp_path / uuid.uuid4().hex
    out.mkdir()
    dumps, original = base_dumps
    dump, what = spoil(dumps[kind], corruption, out)
    before = fingerprint(target)
    counts, error = restored(dump)
    if counts is None:
        assert error and "\n" not in error, what
        assert fingerprint(target) == before, f"{what}: v1 changed although the restore failed"
        return
    scratch = f"lifeos_test_oracle_{uuid.uuid4().hex[:8]}"
    lifeos_env.create_database(scratch)
    try:
        # PostgreSQL's reading, or where psql stops at a statement that acts on nothing restored (a DELETE
        # before the table exists, as pg_dump --clean writes DROPs), the rows of the dump as written
        expected = tables_of(scratch, "public") if postgres_reads(dump, kind, scratch) else original
        assert tables_of(target, "v1") == expected, f"{what}: restored different data"
    finally:
        lifeos_env.drop_database(scratch)


# How notes is laid out in the source: name -> the DDL that replaces it (children take the odd rows)
SHAPES = {
    "plain": "create table public.notes ({columns}, primary key (id))",
    "partitions": "create table public.notes ({columns}, primary key (id)) partition by hash (id);"
    " create table public.notes_p0 partition of public.notes for values with (modulus 2, remainder 0);"
    " create table public.notes_p1 (like public.notes including defaults);"
    " alter table public.notes attach partition public.notes_p1 for values with (modulus 2, remainder 1)",
    "inheritance": "create table public.notes ({columns}, primary key (id));"
    " create table public.notes_child (kept text default 'child') inherits (public.notes)",
}
# Columns with a constant default a COPY column list may leave out
DEFAULTS = {"content_format": "'markdown'", "tags": "'{}'"}


@pytest.fixture(scope="module")
def shapes_source(databases: tuple[str, str]) -> Iterator[str]:
    source = f"lifeos_test_shapes_{uuid.uuid4().hex[:8]}"
    v1_shaped(source)
    try:
        yield source
    finally:
        lifeos_env.drop_database(source)


def reshape(source: str, shape: str, notes: list[tuple[uuid.UUID, str, str | None, list[str]]]) -> None:
    """notes in `source` laid out as `shape`, holding `notes` (the odd ones in the inheritance child)."""
    notes_table = next(table for table in public_tables() if table.name == "notes")
    columns = ", ".join(
        f"{name} {kind}" + (f" default {DEFAULTS[name]}" if name in DEFAULTS else "")
        for name, kind in notes_table.expected.items()
    )
    query(source, "drop table if exists public.notes cascade; " + SHAPES[shape].format(columns=columns))
    for n, (row_id, title, body, tags) in enumerate(notes):
        table = "notes_child" if shape == "inheritance" and n % 2 else "notes"
        query(source, sql.SQL("insert into public.{} (id, title, body, tags) values (%s, %s, %s, %s)").format(
            sql.Identifier(table)), (str(row_id), title, body, tags))  # fmt: skip


def leave_out(text: str, dropped: set[str]) -> str:
    """The dump with `dropped` left out of the COPY blocks of notes and its partitions or children."""
    out, columns = [], None
    for line in text.splitlines(keepends=True):
        if columns is not None:  # inside a COPY block of notes
            if line == "\\.\n":
                columns = None
            else:
                fields = line.rstrip("\n").split("\t")
                line = "\t".join(f for f, name in zip(fields, columns, strict=True) if name not in dropped) + "\n"
        elif line.startswith("COPY public.notes") and line.endswith(") FROM stdin;\n"):
            head, _, listed = line.removesuffix(") FROM stdin;\n").partition(" (")
            columns = listed.split(", ")
            line = f"{head} ({', '.join(c for c in columns if c not in dropped)}) FROM stdin;\n"
        out.append(line)
    return "".join(out)


@given(
    notes=NOTES,
    shape=st.sampled_from(list(SHAPES)),
    kind=st.sampled_from(list(FORMATS)),
    dropped=st.sets(st.sampled_from(sorted(DEFAULTS))),
)
@example(notes=[(uuid.UUID(int=1), "a", "\\item\n\\.\n", [])], shape="partitions", kind="inserts", dropped=set())
@example(notes=[(uuid.UUID(int=1), "a", None, []), (uuid.UUID(int=2), "b", "c", ["d"])], shape="inheritance",
         kind="plain", dropped={"content_format", "tags"})  # fmt: skip
@settings(EXAMPLES)
def test_partitions_children_and_column_lists_restore_as_postgresql_reads_them(
    notes: list[tuple[uuid.UUID, str, str | None, list[str]]],
    shape: str,
    kind: str,
    dropped: set[str],
    shapes_source: str,
    databases: tuple[str, str],
    tmp_path: Path,
) -> None:
    """Every row of notes, its partitions and children included, restores into v1.notes; a COPY column list
    that leaves columns out restores their defaults, exactly as psql reads the same dump."""
    _, target = databases
    reshape(shapes_source, shape, notes)
    dump = pg_dump(shapes_source, kind, tmp_path / uuid.uuid4().hex)
    expected = tables_of(shapes_source, "public")
    if dropped and kind == "plain":
        dump.write_text(leave_out(dump.read_text(encoding="utf-8"), dropped), encoding="utf-8")
        scratch = f"lifeos_test_oracle_{uuid.uuid4().hex[:8]}"
        lifeos_env.create_database(scratch)
        try:
            assert postgres_reads(dump, kind, scratch)
            expected = tables_of(scratch, "public")
        finally:
            lifeos_env.drop_database(scratch)
    counts, error = restored(dump)
    assert counts is not None, error
    assert counts["notes"] == len(notes)
    assert tables_of(target, "v1") == expected
