"""Issue 26, the restore: dumps that are not what they seem, each restored as PostgreSQL reads it or refused.

Partitions and inheritance children restore into their v1 table; a skipped table's COPY block is read like
any other; a table without its data section, a setting pg_dump never writes, a DO block are refused; a COPY
that leaves columns out gets their defaults; --schema never drops a schema holding types; an all-empty dump
says so; scanning is one pass (cases 1-8 and the restore's messages of case 16).
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql
from test_restore import copy_out, edit, fingerprint, inject, plain_with, query

import lifeos_env
import make_supabase_dump
import migrate
import restore_v1
from lifeos import report
from lifeos.restore.scanner import Scanner
from lifeos.settings import load as load_settings

pytestmark = pytest.mark.both_servers  # dumps by the server's own pg_dump, restored into that server

Source = tuple[str, dict[str, Path]]
NOTE_COLUMNS = ["id", "title", "body", "content_format", "tags", "created_at", "updated_at"]


@contextmanager
def derived(supabase_source: Source, statements: str) -> Iterator[str]:
    """A copy of the Supabase-like source database, changed by `statements`."""
    name = f"lifeos_test_derived_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(dbname="postgres")
    conn.autocommit = True  # create database runs outside a transaction
    with conn.cursor() as cur:
        cur.execute(sql.SQL("create database {} template {}").format(*map(sql.Identifier, (name, supabase_source[0]))))
    conn.close()
    try:
        query(name, statements)
        yield name
    finally:
        lifeos_env.drop_database(name)


def pg_dump(database: str, out: Path, *options: str) -> Path:
    """A dump of `database` by the server's own pg_dump (its output restores on that server unchanged)."""
    major = int(query(database, "show server_version_num")[0][0]) // 10000
    subprocess.run([lifeos_env.pg_client("pg_dump", major), *options, "--file", str(out), database], check=True)
    return out


def refused(dump: Path, database: str) -> str:
    """The one-line error of restoring `dump`, having checked that v1 stayed as it was."""
    before = fingerprint(database)
    with pytest.raises(lifeos_env.MigrationError) as error:
        restore_v1.restore(load_settings(), dump)
    assert "\n" not in str(error.value)
    assert fingerprint(database) == before
    return str(error.value)


NOTES_BY_YEAR = """
alter table public.links drop constraint if exists links_note_id_fkey;
alter table public.notes rename to notes_flat;
create table public.notes (like public.notes_flat including defaults) partition by range (created_at);
create table public.notes_early partition of public.notes for values from (minvalue) to ('{split}');
create table public.notes_late (like public.notes_flat including defaults);
alter table public.notes attach partition public.notes_late for values from ('{split}') to (maxvalue);
insert into public.notes select * from public.notes_flat;
drop table public.notes_flat cascade;
"""
NOTES_ARCHIVED = """
create table public.notes_archive (archived_at date default '2024-01-01') inherits (public.notes);
with moved as (delete from only public.notes where created_at < '{split}' returning *)
insert into public.notes_archive select * from moved;
"""


def split_point(supabase_source: Source) -> str:
    """A created_at that puts half of the sample's notes on each side."""
    rows = query(supabase_source[0], "select percentile_disc(0.5) within group (order by created_at) from notes")
    return str(rows[0][0])


@pytest.mark.parametrize("shape", ["partitions", "inheritance"])
@pytest.mark.parametrize(
    "options",
    [["--format=custom"], ["--format=plain"], ["--format=plain", "--inserts"], ["--load-via-partition-root"]],
)
def test_partitions_and_children_restore_every_row_into_their_v1_table(
    shape: str, options: list[str], supabase_source: Source, fresh_database: str, tmp_path: Path
) -> None:
    """Case 1: notes partitioned by year, or half of them in an inheritance child: all 50 restore into v1.notes."""
    split = split_point(supabase_source)
    change = (NOTES_BY_YEAR if shape == "partitions" else NOTES_ARCHIVED).format(split=split)
    with derived(supabase_source, change) as source:
        children = query(source, "select count(*) from pg_inherits where inhparent = 'public.notes'::regclass")
        assert children[0][0] >= 1
        assert query(source, "select count(*) from only public.notes")[0][0] < 50
        counts = restore_v1.restore(load_settings(), pg_dump(source, tmp_path / "notes.dump", *options))
        assert counts["notes"] == 50
        assert copy_out(fresh_database, "v1", "notes", NOTE_COLUMNS) == copy_out(
            source, "public", "notes", NOTE_COLUMNS
        )


def test_a_sub_partitioned_table_and_routines_with_sql_bodies_restore(
    supabase_source: Source, fresh_database: str, tmp_path: Path
) -> None:
    """Case 1 and the scanner: a partition partitioned again holds no data of its own; a BEGIN ATOMIC body and a
    rule's parenthesised actions hold `;`s that end no statement (as psql reads them)."""
    split = split_point(supabase_source)
    change = NOTES_BY_YEAR.replace(
        "to ('{split}');",
        "to ('{split}') partition by list (content_format);"
        " create table public.notes_early_all partition of public.notes_early default;",
        1,
    ).format(split=split)
    change += """
    create function public.sign_of(a int) returns int language sql
    begin atomic select case when a > 0 then 1 else -1 end; end;
    create table public.log (a int); create table public.log_copy (a int);
    create rule twice as on insert to public.log do also (insert into public.log_copy values (new.a);
      insert into public.log_copy values (new.a + 1));
    """
    with derived(supabase_source, change) as source:
        assert query(source, "select count(*) from public.notes_early_all")[0][0] > 0
        dump = pg_dump(source, tmp_path / "nested.sql")
        assert "BEGIN ATOMIC" in dump.read_text(encoding="utf-8")
        assert restore_v1.restore(load_settings(), dump)["notes"] == 50
        assert copy_out(fresh_database, "v1", "notes", NOTE_COLUMNS) == copy_out(
            source, "public", "notes", NOTE_COLUMNS
        )


def test_empty_statements_are_skipped_as_psql_skips_them(
    supabase_source: Source, fresh_database: str, tmp_path: Path
) -> None:
    """The scanner: `;;` and a `;` after a comment alone are empty statements, which psql never sends."""
    tasks = "COPY public.tasks "
    empty = "SELECT 1;;\n/* a comment alone */ ;\n  ;\n"
    dump = plain_with(supabase_source, tmp_path, lambda t: edit(t, tasks, empty + tasks))
    assert restore_v1.restore(load_settings(), dump)["tasks"] == 200


def test_a_child_attached_after_its_rows_were_read_is_refused(
    supabase_source: Source, fresh_database: str, tmp_path: Path
) -> None:
    """Case 1: rows read as a skipped table's that later become notes' would be lost: refused."""
    restore_v1.restore(load_settings(), supabase_source[1]["plain"])
    block = "COPY public.old_notes (id, title) FROM stdin;\n00000000-0000-4000-8000-00000000abcd\tlate\n\\.\n"
    late = "CREATE TABLE public.old_notes (id uuid, title text);\n" + block
    late += "ALTER TABLE public.old_notes INHERIT public.notes;\n"
    message = refused(plain_with(supabase_source, tmp_path, lambda t: inject(t, late)), fresh_database)
    assert "public.old_notes becomes part of public.notes after its rows were read" in message


def test_a_child_of_two_v1_tables_is_refused(supabase_source: Source, fresh_database: str, tmp_path: Path) -> None:
    """Case 1: rows of a child of notes and tasks are in both as PostgreSQL reads them: refused, not guessed."""
    restore_v1.restore(load_settings(), supabase_source[1]["plain"])
    both = "CREATE TABLE public.both_kinds (extra text) INHERITS (public.notes, public.tasks);\n"
    both += "COPY public.both_kinds (id, title) FROM stdin;\n00000000-0000-4000-8000-00000000abcd\tboth\n\\.\n"
    message = refused(plain_with(supabase_source, tmp_path, lambda t: inject(t, both)), fresh_database)
    assert "public.both_kinds is a child of public.notes and public.tasks: its rows would be in both" in message


def test_a_missing_end_of_data_after_a_skipped_table_is_refused(fresh_database: str, tmp_path: Path) -> None:
    """Case 2: the bundled sample without the \\. that ends auth.users' COPY: psql refuses it, and so does this."""
    restore_v1.restore(load_settings(), restore_v1.SAMPLE_DUMP)
    text = restore_v1.SAMPLE_DUMP.read_text(encoding="utf-8")
    start = text.index("COPY auth.users ")
    end = text.index("\\.\n", start)
    dump = tmp_path / "no_end.sql"
    dump.write_text(text[:end] + text[end + 3 :], encoding="utf-8")
    message = refused(dump, fresh_database)
    assert re.search(r"line \d+ of .*: the COPY data of auth\.users does not read as its 4 column\(s\)", message)
    assert "is a \\. line missing?" in message


def test_a_skipped_tables_copy_in_another_format_is_refused(
    supabase_source: Source, fresh_database: str, tmp_path: Path
) -> None:
    """Case 2: a CSV block would be read as text rows that do not fit: refused by its format, naming it."""
    restore_v1.restore(load_settings(), supabase_source[1]["plain"])
    csv = 'COPY auth.sessions (id, note) FROM stdin WITH (FORMAT csv);\n1,"a\tb"\n\\.\n'
    message = refused(plain_with(supabase_source, tmp_path, lambda t: inject(t, csv)), fresh_database)
    assert "refusing `COPY auth.sessions (id, note) FROM stdin WITH (FORMAT csv)`: only COPY's text format" in message


def test_a_skipped_tables_rows_are_read_like_any_other(supabase_source: Source, fresh_database: str) -> None:
    """Case 2: the sample's skipped tables (auth.users) are read, and the restore still passes."""
    counts = restore_v1.restore(load_settings(), supabase_source[1]["plain"])
    assert counts["areas"] == 10 and counts["projects"] == 20


@pytest.mark.parametrize("table", ["daily_focus", "reminders"])
def test_a_table_without_its_data_section_is_refused(
    table: str, supabase_source: Source, fresh_database: str, tmp_path: Path
) -> None:
    """Case 3: pg_dump writes a data section for every table, even an empty one (reminders has no rows)."""
    restore_v1.restore(load_settings(), supabase_source[1]["plain"])
    cut = plain_with(
        supabase_source, tmp_path, lambda t: re.sub(rf"(?ms)^COPY public\.{table} .*?^\\\.\n", "", t, count=1)
    )
    message = refused(cut, fresh_database)
    assert f"the dump creates public.{table} but holds no data section for it" in message


def test_an_insert_dump_with_an_empty_table_restores(
    supabase_source: Source, fresh_database: str, tmp_path: Path
) -> None:
    """Case 3: with --inserts an empty table's data section is its heading alone (reminders has no rows)."""
    dump = pg_dump(supabase_source[0], tmp_path / "inserts.sql", "--inserts")
    assert "Name: reminders; Type: TABLE DATA" in dump.read_text(encoding="utf-8")
    assert restore_v1.restore(load_settings(), dump)["reminders"] == 0


def without_columns(text: str, table: str, dropped: list[str]) -> str:
    """The dump with `dropped` left out of `table`'s COPY: its column list and every row."""
    head, _, rest = text.partition(f"COPY public.{table} (")
    columns, _, rest = rest.partition(") FROM stdin;\n")
    rows, _, tail = rest.partition("\\.\n")
    names = columns.split(", ")
    keep = [n for n, name in enumerate(names) if name not in dropped]
    lines = ["\t".join(row.split("\t")[n] for n in keep) for row in rows.splitlines()]
    listed = ", ".join(names[n] for n in keep)
    return (
        f"{head}COPY public.{table} ({listed}) FROM stdin;\n" + "".join(f"{line}\n" for line in lines) + "\\.\n" + tail
    )


def test_a_copy_that_leaves_columns_out_gets_their_defaults(
    supabase_source: Source, fresh_database: str, tmp_path: Path
) -> None:
    """Case 4: COPY notes without content_format and created_at: 'markdown' and now(), as PostgreSQL fills them."""
    dump = plain_with(
        supabase_source, tmp_path, lambda t: without_columns(t, "notes", ["content_format", "created_at"])
    )
    restore_v1.restore(load_settings(), dump)
    rows = query(
        fresh_database,
        "select count(*), count(*) filter (where content_format = 'markdown'),"
        " count(*) filter (where created_at > now() - interval '1 hour') from v1.notes",
    )
    assert rows == [(50, 50, 50)]
    assert query(fresh_database, "select count(*) from pg_attrdef") == [(0,)]  # no default stays behind


def test_a_copy_that_leaves_out_a_not_null_column_without_default_is_refused(
    supabase_source: Source, fresh_database: str, tmp_path: Path
) -> None:
    """Case 4: PostgreSQL would refuse the null; so does the restore, naming the column."""
    restore_v1.restore(load_settings(), supabase_source[1]["plain"])
    dump = plain_with(supabase_source, tmp_path, lambda t: without_columns(t, "notes", ["title"]))
    assert "the data of public.notes leaves out column title, which is NOT NULL" in refused(dump, fresh_database)


def test_a_schema_holding_types_other_tables_use_is_never_replaced(fresh_database: str) -> None:
    """Case 5: --schema lib, where lib holds an enum and a domain of public.diary: refused, diary keeps its columns."""
    query(
        fresh_database,
        "create schema lib; create type lib.mood as enum ('calm'); create domain lib.short as text;"
        " create table public.diary (id int, mood lib.mood, summary lib.short)",
    )
    assert restore_v1.main([str(restore_v1.SAMPLE_DUMP), "--schema", "lib"]) == 1
    assert query(fresh_database, "select count(*) from information_schema.columns where table_name = 'diary'") == [(3,)]


SETTINGS: dict[str, tuple[Callable[[str], str], str]] = {
    "standard_conforming_strings off in a DO block": (
        lambda t: edit(
            t,
            "SET check_function_bodies = false;\n",
            "SET check_function_bodies = false;\n"
            "DO $$ BEGIN PERFORM set_config('standard_conforming_strings', 'off', false); END $$;\n",
        ),
        "refusing `DO $$ BEGIN PERFORM set_config('standard_conforming_strings'",
    ),
    "array_nulls off": (
        lambda t: edit(t, "SET check_function_bodies = false;\n", "SET array_nulls = off;\n"),
        "refusing `SET array_nulls = off`: it sets array_nulls, which pg_dump never sets",
    ),
    "array_nulls off by UPDATE pg_settings": (
        lambda t: inject(t, "UPDATE pg_catalog.pg_settings SET setting = 'off' WHERE name = 'array_nulls';\n"),
        "it changes settings as set_config does",
    ),
    "array_nulls off for the database, then \\connect": (
        lambda t: inject(t, "ALTER DATABASE lifeos SET array_nulls TO off;\n\\connect lifeos\n"),
        "it stores array_nulls for later sessions, which may change how the dump reads",
    ),
    "ALTER SYSTEM": (
        lambda t: inject(t, "ALTER SYSTEM SET standard_conforming_strings = off;\nSELECT pg_reload_conf();\n"),
        "refusing `ALTER SYSTEM SET standard_conforming_strings = off`",
    ),
    "array_nulls off by set_config": (
        lambda t: inject(t, "SELECT pg_catalog.set_config('array_nulls', 'off', false);\n"),
        "it sets array_nulls, which pg_dump never sets",
    ),
}


@pytest.mark.parametrize("case", SETTINGS)
def test_settings_pg_dump_never_writes_are_refused_with_their_line(
    case: str, supabase_source: Source, fresh_database: str, tmp_path: Path
) -> None:
    """Case 6: a setting that changes how values read, set where the restore cannot follow it: one line."""
    restore_v1.restore(load_settings(), supabase_source[1]["plain"])
    spoil, expected = SETTINGS[case]
    message = refused(plain_with(supabase_source, tmp_path, spoil), fresh_database)
    assert re.match(r"line \d+ of ", message) and expected in message


def emptied(text: str) -> str:
    """The dump with every COPY block's rows deleted: each data section present and empty."""
    return re.sub(r"(?ms)(^COPY [^\n]*\n).*?^\\\.\n", r"\1\\.\n", text)


def test_an_all_empty_dump_restores_and_says_so(
    supabase_source: Source, fresh_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Case 7: every data section present and empty: v1 is restored empty, and the report says it."""
    empty = plain_with(supabase_source, tmp_path, emptied)
    counts = restore_v1.restore(load_settings(), empty)
    assert set(counts.values()) == {0}
    output = " ".join(capsys.readouterr().out.split())
    assert "warning: the dump holds no rows at all: every v1 table is restored empty" in output
    assert ": 0 rows (EMPTY)" in output


def test_an_all_empty_migration_says_so_in_its_summary_line(
    supabase_source: Source, fresh_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Case 7: the whole migration of an all-empty dump passes, and its last line and report say v2 is empty."""
    empty = plain_with(supabase_source, tmp_path, emptied)
    assert migrate.main(["--dump", str(empty), "--skip-files", "--no-publish"]) == 0
    output = " ".join(capsys.readouterr().out.split())
    assert "validation passed (v1 held no rows: v2 is EMPTY): report in" in output
    assert report.EMPTY in (load_settings().target / "report.md").read_text()


@pytest.mark.parametrize("lines", [5_000, 10_000, 20_000])
def test_scanning_is_one_pass_and_holds_one_statement(lines: int) -> None:
    """Case 8: each character is examined once, and the text held at once stays within the largest statement."""
    dump = make_supabase_dump.backslash_lines_dump(lines)
    scanner = Scanner(dump.splitlines(keepends=True), "latex.sql")
    statements = [piece for piece in scanner.pieces() if piece.kind == "statement"]
    assert len(statements) == 3
    assert scanner.work == len(dump.decode())  # linear: no character is scanned twice
    assert scanner.largest > lines * 40 and scanner.peak <= 10 * scanner.largest


def test_a_long_backslash_body_restores_exactly(fresh_database: str, tmp_path: Path) -> None:
    """Case 8: the 20,000-line LaTeX note of the bench restores whole, each backslash line as written."""
    dump = tmp_path / "latex.sql"
    dump.write_bytes(make_supabase_dump.backslash_lines_dump(20_000))
    assert restore_v1.restore(load_settings(), dump)["notes"] == 1
    body = query(fresh_database, "select body from v1.notes")[0][0]
    assert body.count("\n") == 20_000 and body.startswith("\\item line 0 with a 'quote' and \\\\ more;\n")


def test_a_nul_escape_names_its_statement(supabase_source: Source, fresh_database: str, tmp_path: Path) -> None:
    """Case 16: E'\\000' is no truncated dump: the grammar's refusal names the statement and its line."""
    cli = supabase_source[1]["cli"].read_text(encoding="utf-8")
    spoiled = re.sub(r"(INSERT INTO \"public\"\.\"notes\" [^\n]* VALUES \(')", "\\1' || E'\\\\000' || '", cli, count=1)
    assert spoiled != cli
    dump = tmp_path / "nul.sql"
    dump.write_text(spoiled, encoding="utf-8")
    with pytest.raises(lifeos_env.MigrationError) as error:
        restore_v1.restore(load_settings(), dump)
    assert re.match(r"line \d+ of .*: PostgreSQL's grammar rejects `INSERT INTO", str(error.value))
    assert "0x00" in str(error.value) and "truncated" not in str(error.value)


def test_app_tables_under_another_schema_are_named(
    supabase_source: Source, fresh_database: str, tmp_path: Path
) -> None:
    """Case 16: the app's tables dumped from schema app: the error says where they are."""
    dump = plain_with(supabase_source, tmp_path, lambda t: t.replace("public.", "app."))
    with pytest.raises(lifeos_env.MigrationError) as error:
        restore_v1.restore(load_settings(), dump)
    assert "no data for any of the v1 tables" in str(error.value)
    assert "it has areas, capture, context_types, daily_focus" in str(error.value)
    assert "in schema app, but v1's tables are read from schema public" in str(error.value)


def test_a_cluster_dump_of_two_databases_names_them(
    supabase_source: Source, fresh_database: str, tmp_path: Path
) -> None:
    """Case 16: pg_dumpall's output holds each database's pg_dump --create; the error names both and what to do."""
    with derived(supabase_source, "select 1") as other:
        parts = [
            pg_dump(name, tmp_path / f"{n}.sql", "--create").read_text()
            for n, name in enumerate([supabase_source[0], other])
        ]
    dump = tmp_path / "cluster.sql"
    dump.write_text("--\n-- PostgreSQL database cluster dump\n--\n\n" + "".join(parts), encoding="utf-8")
    with pytest.raises(lifeos_env.MigrationError) as error:
        restore_v1.restore(load_settings(), dump)
    message = str(error.value)
    assert f"several databases ({supabase_source[0]}, {other}) with public." in message
    assert "restore one, dumped with `pg_dump DATABASE`" in message


def test_a_boolean_dumped_as_smallint_is_refused_in_one_line(
    supabase_source: Source, fresh_database: str, tmp_path: Path
) -> None:
    """Case 16: smallint for boolean cannot be cast as the models do; refused at the restore, not in dbt."""
    change = "alter table public.capture alter column processed drop default,"
    change += " alter column processed type smallint using processed::int"
    with derived(supabase_source, change) as source:
        dump = pg_dump(source, tmp_path / "drift.sql")
    restore_v1.restore(load_settings(), supabase_source[1]["plain"])
    message = refused(dump, fresh_database)
    assert "public.capture.processed is smallint in the dump, which PostgreSQL cannot cast to boolean" in message
