"""The v1 restore on real servers: every dump kind, byte for byte; bad and crafted dumps refused, v1 untouched."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

import generate_sample
import lifeos_env
import make_supabase_dump
import migrate
import restore_v1
from lifeos.restore import archive
from lifeos.settings import load as load_settings

pytestmark = pytest.mark.both_servers  # dumps by the server's own pg_dump, restored into that server

Fingerprint = list[tuple[object, ...]]


def query(database: str, statement: sql.Composable | str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Run one statement in `database` and commit; its rows, if any."""
    conn = psycopg2.connect(dbname=database)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, args)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def copy_out(database: str, schema: str, table: str, columns: list[str]) -> str:
    """The table as COPY text, sorted: what a byte-for-byte comparison needs."""
    conn = psycopg2.connect(dbname=database, options="-c TimeZone=UTC -c extra_float_digits=3")
    statement = sql.SQL("copy (select {c} from {s}.{t} order by 1, 2) to stdout").format(
        c=sql.SQL(", ").join(map(sql.Identifier, columns)), s=sql.Identifier(schema), t=sql.Identifier(table)
    )
    out = io.StringIO()
    try:
        with conn.cursor() as cur:
            cur.copy_expert(statement.as_string(cur), out)
    finally:
        conn.close()
    return out.getvalue()


def columns_of(database: str, schema: str, table: str) -> list[str]:
    rows = query(
        database,
        "select column_name from information_schema.columns where table_schema = %s and table_name = %s"
        " and is_generated = 'NEVER' order by ordinal_position",
        (schema, table),
    )
    return [name for (name,) in rows]


def fingerprint(database: str) -> Fingerprint:
    """The v1 schema's identity, tables, columns and every row: equal only when nothing changed."""
    tables = query(database, "select c.oid, c.relname from pg_class c where c.relnamespace = 'v1'::regnamespace")
    prints: Fingerprint = [("schema", query(database, "select 'v1'::regnamespace::oid"))]
    for oid, table in sorted(tables, key=lambda t: str(t[1])):
        columns = columns_of(database, "v1", str(table))
        prints.append((oid, table, tuple(columns), copy_out(database, "v1", str(table), columns)))
    return prints


def assert_restored_exactly(source: str, target: str, counts: dict[str, int]) -> None:
    """v1 in `target` holds exactly the source's tables, columns and values; the sample's hard values included."""
    contract = restore_v1.contract().values()
    assert sorted(counts) == sorted(t.target for t in contract)
    tables = query(target, "select tablename from pg_tables where schemaname = 'v1'")
    assert {t for (t,) in tables} == set(counts)
    for table in contract:
        columns = columns_of(source, table.schema, table.name)
        assert columns_of(target, "v1", table.target) == columns, table.target
        restored = copy_out(target, "v1", table.target, columns)
        assert restored == copy_out(source, table.schema, table.name, columns), table.target
    notes = copy_out(target, "v1", "notes", ["id", "body"])
    assert all(escape in notes for escape in ("\\t", "\\n", "\\r", "\\\\", "🎉")), "the sample must hold hard values"
    assert counts["tasks"] == 200 and counts["storage_objects"] == 20


@pytest.mark.parametrize("kind", make_supabase_dump.VARIANTS)
def test_every_dump_kind_restores_every_value(
    kind: str, supabase_source: tuple[str, dict[str, Path]], fresh_database: str
) -> None:
    source, dumps = supabase_source
    assert_restored_exactly(source, fresh_database, restore_v1.restore(load_settings(), dumps[kind]))


def test_a_live_database_restores_exact_floats_whatever_its_defaults(
    supabase_source: tuple[str, dict[str, Path]], fresh_database: str
) -> None:
    """A live source whose default extra_float_digits rounds floats in COPY's output still gives exact values."""
    source = f"lifeos_test_live_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(dbname="postgres")
    conn.autocommit = True  # create database runs outside a transaction
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("create database {} template {}").format(*map(sql.Identifier, (source, supabase_source[0])))
        )
    conn.close()
    try:
        query(
            source,
            "alter table public.tasks add column estimate double precision; update public.tasks set estimate = 1 / 3.0",
        )
        query("postgres", sql.SQL("alter database {} set extra_float_digits = -15").format(sql.Identifier(source)))
        assert_restored_exactly(source, fresh_database, restore_v1.restore(load_settings(), dsn=f"dbname={source}"))
    finally:
        lifeos_env.drop_database(source)


def test_a_live_database_is_read_through_connect_read_only(
    supabase_source: tuple[str, dict[str, Path]], fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As docs/cutover.md says: a live v1 is read over lifeos_env.connect_read_only, the one read-only session."""
    opened: list[psycopg2.extensions.connection] = []
    connect_read_only = lifeos_env.connect_read_only

    def recorded(dsn: str) -> psycopg2.extensions.connection:
        opened.append(connect_read_only(dsn))
        assert opened[-1].readonly
        return opened[-1]

    monkeypatch.setattr(lifeos_env, "connect_read_only", recorded)
    restored = restore_v1.restore(load_settings(), dsn=f"dbname={supabase_source[0]}")
    assert restored["tasks"] > 0
    assert [conn.dsn for conn in opened] == [f"dbname={supabase_source[0]}"]
    assert opened[0].closed


def test_supabase_objects_are_never_created(supabase_source: tuple[str, dict[str, Path]], fresh_database: str) -> None:
    restore_v1.restore(load_settings(), supabase_source[1]["extensions"])
    checks = {
        "event triggers": "select count(*) from pg_event_trigger",
        "policies": "select count(*) from pg_policy",
        "publications": "select count(*) from pg_publication",
        "extensions": "select count(*) from pg_extension where extname <> 'plpgsql'",
        "functions": "select count(*) from pg_proc where pronamespace::regnamespace::text not in"
        " ('pg_catalog', 'information_schema')",
        "Supabase schemas": "select count(*) from pg_namespace where nspname in"
        " ('auth', 'storage', 'extensions', 'graphql', 'vault', 'realtime', 'pgbouncer')",
        "row level security": "select count(*) from pg_class where relrowsecurity",
        "defaults": "select count(*) from pg_attrdef",
        "constraints": "select count(*) from pg_constraint where connamespace = 'v1'::regnamespace",
        "triggers": "select count(*) from pg_trigger",
    }
    assert {name: query(fresh_database, check)[0][0] for name, check in checks.items()} == dict.fromkeys(checks, 0)


def test_extra_columns_are_kept_and_named(
    supabase_source: tuple[str, dict[str, Path]], fresh_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    restore_v1.restore(load_settings(), supabase_source[1]["plain"])
    output = " ".join(capsys.readouterr().out.split())
    assert "public.tasks has extra columns, kept in tasks: user_id" in output
    assert "public.notes has extra columns, kept in notes: user_id" in output
    assert "user_id" in columns_of(fresh_database, "v1", "tasks")


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


def inject(text: str, statements: str) -> str:
    footer = "\n--\n-- PostgreSQL database dump complete"
    return edit(text, footer, "\n" + statements + footer)


MARKER = Path(f"/tmp/lifeos_restore_marker_{uuid.uuid4().hex}")
SMUGGLED = f"""
CREATE TABLE public.pwned_marker (a int);
CREATE FUNCTION public.pwned_fn() RETURNS void LANGUAGE sql AS $$ CREATE TABLE public.pwned_fn_marker () $$;
SELECT public.pwned_fn();
CREATE EVENT TRIGGER pwned_trigger ON ddl_command_end EXECUTE FUNCTION public.pwned_fn();
CREATE TABLE public."tasks""; CREATE TABLE public.pwned_quote (a int); --" (a int);
COPY public."tasks; CREATE TABLE public.pwned_semicolon (a int); --" (a) FROM stdin;
1
\\.
COPY public.pwned_marker (a) FROM PROGRAM 'touch {MARKER}';
"""
DOMAINS_COPY = "COPY public.domains (id, name, color, created_at) FROM stdin;\n"
CLI_TASK = 'INSERT INTO "public"."tasks" '
# the first domains row of the CLI dump, its id replaced by an expression
CLI_EXPRESSION = (
    re.compile(r'(INSERT INTO "public"\."domains" \([^)]*\) VALUES \()[^,]*'),
    r"\1(SELECT public.pwned_fn())",
)
# name -> (the dump variant, how it is spoiled, the one-line error expected)
BAD_DUMPS: dict[str, tuple[str, Callable[[str], str | bytes], str]] = {
    "truncated in COPY data": (
        "plain",
        lambda t: t[: t.index("COPY public.tasks") + 5000],
        "truncated dump: the COPY data of public.tasks",
    ),
    "truncated between statements": (
        "plain",
        lambda t: t[: t.index("-- PostgreSQL database dump complete")],
        "lacks pg_dump's closing",
    ),
    "CLI dump truncated between rows": (
        "cli",
        lambda t: t[: t.rindex(CLI_TASK)],
        "has neither pg_dump's closing line nor the CLI's RESET ALL",
    ),
    "CLI dump truncated inside a row": ("cli", lambda t: t[: t.rindex(CLI_TASK) + 300], "ends inside a statement"),
    "not a dump": ("plain", lambda t: "# Life OS\nSome notes, not SQL.\n", "not a pg_dump file"),
    "gzip": ("plain", lambda t: b"\x1f\x8b\x08\x00garbage", "gzip-compressed"),
    "empty": ("plain", lambda t: "", "is empty"),
    "not UTF-8": ("plain", lambda t: t.encode().replace(b"Line one", b"Line \xffne", 1), "encoding problem: line"),
    "declared LATIN1": (
        "plain",
        lambda t: edit(t, "client_encoding = 'UTF8'", "client_encoding = 'LATIN1'"),
        "is in LATIN1",
    ),
    "missing column": (
        "plain",
        lambda t: edit(t, "    deadline date,\n", ""),
        "public.tasks in the dump lacks column(s) deadline",
    ),
    "missing table": (
        "plain",
        lambda t: t.replace("public.reminders ", "public.reminders_old "),
        "no table public.reminders",
    ),
    "a shell escape": (
        "plain",
        lambda t: inject(t, f"\\! touch {MARKER}\n"),
        "refusing the psql meta-command `\\! touch",
    ),
    "COPY FROM PROGRAM": (
        "plain",
        lambda t: inject(t, f"COPY public.tasks (id) FROM PROGRAM 'touch {MARKER}';\n"),
        "refusing `COPY public.tasks (id) FROM PROGRAM",
    ),
    "statements smuggled into a COPY block": (
        "plain",
        lambda t: edit(
            t, DOMAINS_COPY, f"{DOMAINS_COPY}\\.\nCREATE TABLE public.pwned_marker (a int);\n{DOMAINS_COPY}"
        ),
        "two data sections for public.domains",
    ),
    "an INSERT with an expression": (
        "cli",
        lambda t: CLI_EXPRESSION[0].sub(CLI_EXPRESSION[1], t, count=1),
        "INSERT into public.domains holds something other than literal values: `INSERT INTO",
    ),
    "a COPY row that spans two lines": (
        "plain",
        lambda t: edit(t, "\tWork\t", "\tWo\\\nrk\t"),
        "public.domains: 5 rows loaded but the dump holds 6",
    ),
    "bad data": (
        "plain",
        lambda t: edit(t, "\t3\topen\t", "\tthree\topen\t"),
        "server refused the restore: invalid input syntax for type integer",
    ),
    "a \\. line outside COPY data": (
        "plain",
        lambda t: edit(t, "COPY public.tasks ", "\\.\nCOPY public.tasks "),
        "refusing a \\. line outside COPY data",
    ),
    "standard_conforming_strings off": (
        "plain",  # issue 16 E
        lambda t: edit(t, "SET standard_conforming_strings = on;", "SET standard_conforming_strings = off;"),
        "sets standard_conforming_strings to off",
    ),
    "standard_conforming_strings off by set_config": (
        "plain",
        lambda t: inject(t, "SELECT pg_catalog.set_config('standard_conforming_strings', 'off', false);\n"),
        "sets standard_conforming_strings to off",
    ),
    "INSERT after the COPY of the same table": (
        "plain",  # issue 16: both loaded
        lambda t: inject(
            t, "INSERT INTO public.domains (id, name) VALUES ('00000000-0000-0000-0000-000000000001', 'x');\n"
        ),
        "two data sections for public.domains",
    ),
    "rows deleted after their COPY": (
        "plain",
        lambda t: inject(t, "DELETE FROM public.tasks WHERE status = 'done';\n"),
        "refusing `DELETE FROM public.tasks WHERE status = 'done'`, which changes public.tasks",
    ),
    "a duplicated COPY row that the primary key forbids": (
        "plain",
        lambda t: edit(t, DOMAINS_COPY, DOMAINS_COPY + t.split(DOMAINS_COPY)[1].split("\n")[0] + "\n"),
        "public.domains holds two rows with the same id",
    ),
    "a statement PostgreSQL cannot parse": (
        "plain",
        lambda t: inject(t, "CREATE TABLE public.half (a int;\n"),
        "inside the statement `CREATE TABLE public.half (a int; -- -- PostgreSQL database dump complete --`"
        " (a parenthesis is left open)",
    ),
    "no data at all": (
        "plain",
        lambda t: "SET lock_timeout = 0;\nRESET ALL;\n",
        "the dump holds no data for any of the v1 tables",
    ),
    "schema only": (
        "plain",
        lambda t: re.sub(r"(?ms)^COPY .*?^\\\.\n", "", t),
        "the dump holds no data for any of the v1 tables",
    ),
}


def no_trace_of_execution(database: str) -> None:
    assert not MARKER.exists()
    assert query(database, "select relname from pg_class where relname like 'pwned%%'") == []
    assert query(database, "select proname from pg_proc where proname like 'pwned%%'") == []
    assert query(database, "select evtname from pg_event_trigger") == []


@pytest.mark.parametrize("case", BAD_DUMPS)
def test_bad_dumps_are_refused_and_v1_is_unchanged(
    case: str, supabase_source: tuple[str, dict[str, Path]], fresh_database: str, tmp_path: Path
) -> None:
    restore_v1.restore(load_settings(), supabase_source[1]["plain"])
    before = fingerprint(fresh_database)
    variant, spoil, message = BAD_DUMPS[case]
    spoiled = spoil(supabase_source[1][variant].read_text(encoding="utf-8"))
    bad = tmp_path / "bad.sql"
    bad.write_bytes(spoiled if isinstance(spoiled, bytes) else spoiled.encode())
    with pytest.raises(lifeos_env.MigrationError) as refused:
        restore_v1.restore(load_settings(), bad)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert fingerprint(fresh_database) == before
    assert query(fresh_database, "select nspname from pg_namespace where nspname like 'v1_restore_%%'") == []
    no_trace_of_execution(fresh_database)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("truncated", "truncated dump: pg_restore cannot read"),
        ("newer", "is archive format 1.99, newer than the newest pg_restore here reads"),
    ],
)
def test_bad_archives_are_refused(
    case: str, message: str, supabase_source: tuple[str, dict[str, Path]], fresh_database: str, tmp_path: Path
) -> None:
    archive = supabase_source[1]["custom"].read_bytes()
    bad = tmp_path / "bad.dump"
    bad.write_bytes(archive[: len(archive) // 2] if case == "truncated" else archive[:6] + b"\x63" + archive[7:])
    with pytest.raises(lifeos_env.MigrationError) as refused:
        restore_v1.restore(load_settings(), bad)
    assert message in str(refused.value)
    assert query(fresh_database, "select count(*) from pg_namespace where nspname like 'v1%%'") == [(0,)]


def test_an_unreadable_archive_is_refused_before_any_connection(
    supabase_source: tuple[str, dict[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16 C: pg_restore -l checks the archive before a transaction opens on the target."""

    def no_connection() -> None:
        raise AssertionError("connected to the target before the archive was checked")

    monkeypatch.setattr(lifeos_env, "connect", no_connection)
    archive = supabase_source[1]["custom"].read_bytes()
    bad = tmp_path / "bad.dump"
    bad.write_bytes(archive[:6] + b"\x63" + archive[7:])
    with pytest.raises(lifeos_env.MigrationError, match=r"is archive format 1\.99"):
        restore_v1.restore(load_settings(), bad)


def test_a_crafted_dump_runs_nothing(
    supabase_source: tuple[str, dict[str, Path]], fresh_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Functions, event triggers, quoted names, meta-commands and COPY FROM PROGRAM on other tables: all inert."""
    crafted = supabase_source[1]["plain"].parent / "crafted.sql"
    crafted.write_text(inject(supabase_source[1]["plain"].read_text(encoding="utf-8"), SMUGGLED), encoding="utf-8")
    counts = restore_v1.restore(load_settings(), crafted)
    assert counts["tasks"] == 200
    assert 'public tables outside the v1 contract, not restored: public.pwned_marker, public.tasks"; CREATE' in (
        capsys.readouterr().out
    )
    no_trace_of_execution(fresh_database)


def test_the_bundled_sample_is_the_generated_sample(fresh_database: str) -> None:
    """sample/life_os_v1_backup.sql holds generate_sample's rows, and a storage object per blob it writes."""
    restore_v1.restore(load_settings(), restore_v1.SAMPLE_DUMP)
    generator = generate_sample.Generator(1)
    generate_sample.load("generated", generator.tables())
    for table in restore_v1.contract().values():
        if table.schema == "public":
            columns = list(table.expected)
            assert copy_out(fresh_database, "v1", table.target, columns) == copy_out(
                fresh_database, "generated", table.target, columns
            ), f"{table.target}: regenerate the sample with `python scripts/make_supabase_dump.py --sample`"
    objects = query(fresh_database, "select name, (metadata->>'size')::int, metadata->>'eTag' from v1.storage_objects")
    blobs = [(key, len(body), f'"{hashlib.md5(body).hexdigest()}"') for key, body in generator.blobs.items()]
    assert sorted(objects) == sorted(blobs) and len(blobs) == 20


def test_a_dump_without_storage_restores_an_empty_inventory(
    supabase_source: tuple[str, dict[str, Path]], fresh_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    public_only = supabase_source[1]["plain"].parent / "public_only.sql"
    text = supabase_source[1]["plain"].read_text(encoding="utf-8")
    public_only.write_text(
        text.replace("storage.buckets ", "storage.old_buckets ").replace("storage.objects ", "storage.old_objects ")
    )
    counts = restore_v1.restore(load_settings(), public_only)
    assert counts["storage_objects"] == counts["storage_buckets"] == 0 and counts["tasks"] == 200
    assert columns_of(fresh_database, "v1", "storage_objects") == ["id", "bucket_id", "name", "metadata"]
    assert "the dump has no storage.objects: storage_objects is restored empty" in " ".join(
        capsys.readouterr().out.split()
    )


def test_the_command_reports_one_line_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_a_dump = tmp_path / "notes.txt"
    not_a_dump.write_text("hello\n")
    assert restore_v1.main([str(not_a_dump)]) == 1
    assert (
        " ".join(capsys.readouterr().out.split())
        == f"restore failed: not a pg_dump file: {not_a_dump} starts with `hello`"
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--dump", "/nonexistent/life_os_v1_backup.sql"], "no dump at /nonexistent/life_os_v1_backup.sql"),
        (["--from-dsn", "dbname=lifeos_no_such_database"], "cannot connect to the v1 database"),
    ],
)
def test_migrate_restores_through_this_step(
    arguments: list[str], message: str, fresh_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert migrate.main(arguments) == 1
    assert message in " ".join(capsys.readouterr().out.split())
    assert query(fresh_database, "select count(*) from pg_namespace where nspname like 'v1%%'") == [(0,)]


def plain_with(supabase_source: tuple[str, dict[str, Path]], tmp_path: Path, spoil: Callable[[str], str]) -> Path:
    path = tmp_path / "edited.sql"
    path.write_text(spoil(supabase_source[1]["plain"].read_text(encoding="utf-8")), encoding="utf-8")
    return path


def test_copy_data_of_an_unqualified_table_is_skipped_whole(
    supabase_source: tuple[str, dict[str, Path]], fresh_database: str, tmp_path: Path
) -> None:
    """Issue 16 A: a COPY block the restore does not keep is still read to its \\. line; the next table loads whole."""
    tasks = "COPY public.tasks "
    dump = plain_with(
        supabase_source, tmp_path, lambda t: edit(t, tasks, "COPY users (id) FROM stdin;\n1\n\\.\n" + tasks)
    )
    assert_restored_exactly(supabase_source[0], fresh_database, restore_v1.restore(load_settings(), dump))


def test_a_backslash_line_after_unscanned_copy_data_keeps_its_place(
    supabase_source: tuple[str, dict[str, Path]], fresh_database: str, tmp_path: Path
) -> None:
    """A long literal spaces out the scans; the COPY it hides (no `stdin;` line end) must still end at its \\. line."""
    tasks = "COPY public.tasks "
    hidden = f"SELECT '{'a' * 1000}\nx;\ny';\nCOPY public.other FROM stdin WITH (FORMAT text);\n1\n\\.\n"
    dump = plain_with(supabase_source, tmp_path, lambda t: edit(t, tasks, hidden + tasks))
    assert_restored_exactly(supabase_source[0], fresh_database, restore_v1.restore(load_settings(), dump))


@pytest.mark.parametrize("options", [["--clean"], ["--clean", "--if-exists"]])
def test_a_dump_that_drops_before_it_creates_restores_every_value(
    options: list[str], supabase_source: tuple[str, dict[str, Path]], fresh_database: str, tmp_path: Path
) -> None:
    """pg_dump --clean opens with DROP TABLE and ALTER TABLE ... DROP CONSTRAINT: harmless before the CREATE TABLE."""
    dump = tmp_path / "clean.sql"
    subprocess.run([lifeos_env.pg_client("pg_dump"), *options, "--file", str(dump), supabase_source[0]], check=True)
    assert "DROP TABLE" in dump.read_text(encoding="utf-8")
    assert_restored_exactly(supabase_source[0], fresh_database, restore_v1.restore(load_settings(), dump))


def test_the_dumps_date_style_and_time_zone_read_its_values(
    supabase_source: tuple[str, dict[str, Path]], fresh_database: str, tmp_path: Path
) -> None:
    """A dump that sets DateStyle and TimeZone before its data is read as PostgreSQL reads it, not in ours."""
    head, _, rest = supabase_source[1]["plain"].read_text(encoding="utf-8").partition("COPY public.tasks (")
    columns, _, rows = rest.partition(") FROM stdin;\n")
    names = columns.split(", ")
    lines = rows.split("\n")
    at = next(n for n, line in enumerate(lines) if line.split("\t")[names.index("due_date")] != "\\N")
    values = lines[at].split("\t")
    due, created = values[names.index("due_date")], values[names.index("created_at")].removesuffix("+00")
    year, month, day = due.split("-")
    values[names.index("due_date")] = f"{day}/{month}/{year}"  # as DateStyle SQL, DMY reads it
    values[names.index("created_at")] = created  # no zone: the dump's TimeZone applies
    lines[at] = "\t".join(values)
    settings = "SET datestyle = 'SQL, DMY';\nSET TIME ZONE 'Asia/Tokyo';\n"
    body = "\n".join(lines)
    dump = plain_with(
        supabase_source, tmp_path, lambda t: f"{head}{settings}COPY public.tasks ({columns}) FROM stdin;\n{body}"
    )
    restore_v1.restore(load_settings(), dump)
    restored = query(
        fresh_database,
        "select due_date = %s::date, created_at = %s::timestamp at time zone 'Asia/Tokyo' from v1.tasks where id = %s",
        (due, created, values[names.index("id")]),
    )
    assert restored == [(True, True)]


def test_a_data_only_dump_without_rows_for_a_table_v1_has_warns(
    supabase_source: tuple[str, dict[str, Path]],
    fresh_database: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Issue 16 B: a CLI dump that lost the rows of tasks still restores, but says which table v1 had rows in."""
    restore_v1.restore(load_settings(), supabase_source[1]["plain"])
    cli = supabase_source[1]["cli"].read_text(encoding="utf-8")
    no_tasks = tmp_path / "no_tasks.sql"
    first, last = cli.index(CLI_TASK), cli.rindex(CLI_TASK)
    no_tasks.write_text(cli[:first] + cli[cli.index("\nINSERT INTO", last) + 1 :])
    capsys.readouterr()
    assert restore_v1.restore(load_settings(), no_tasks)["tasks"] == 0
    output = " ".join(capsys.readouterr().out.split())
    assert "the data-only dump holds no rows for public.tasks, but v1.tasks has 200" in output
    assert "holds no rows for public.notes" not in output


def test_a_truncated_tar_archive_fails_instead_of_hanging(
    supabase_source: tuple[str, dict[str, Path]], fresh_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16 C: pg_restore spins forever on a tar cut short; the watchdog stops it with one line."""
    monkeypatch.setattr(archive, "STALL_SECONDS", 2.0)
    cut = tmp_path / "cut.tar"
    cut.write_bytes(supabase_source[1]["tar"].read_bytes()[:300_000])
    with pytest.raises(lifeos_env.MigrationError) as refused:
        restore_v1.restore(load_settings(), cut)
    assert "pg_restore made no progress on" in str(refused.value) and "truncated or damaged" in str(refused.value)
    assert query(fresh_database, "select count(*) from pg_namespace where nspname like 'v1%%'") == [(0,)]


def test_a_long_literal_costs_a_small_multiple_of_its_size(
    supabase_source: tuple[str, dict[str, Path]], fresh_database: str, tmp_path: Path
) -> None:
    """Issue 16 D: a 20 MB string literal in a skipped statement; the restore's peak memory grows by < 10 times it."""
    size = 20_000_000
    marker = "SET check_function_bodies = false;\n"
    big = plain_with(supabase_source, tmp_path, lambda t: edit(t, marker, f"{marker}SELECT '{'x' * size}';\n"))
    peaks = []
    for dump in (supabase_source[1]["plain"], big):  # the peak RSS (KiB) of a restore run as the only child
        measure = "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True);"
        measure += " print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        restore = [sys.executable, str(lifeos_env.ROOT / "scripts" / "restore_v1.py"), str(dump)]
        done = subprocess.run([sys.executable, "-c", measure, *restore], capture_output=True, text=True, check=True)
        returncode, peak = map(int, done.stdout.split())
        assert returncode == 0
        peaks.append(peak * 1024)
    assert peaks[1] - peaks[0] < 10 * size, peaks


@pytest.mark.parametrize("schema", ["public", "v2_shadow", "lifeos_migration", "v2_work", "v2_backup_20250101000000"])
def test_a_schema_of_v2_or_the_migration_is_never_replaced(schema: str, fresh_database: str) -> None:
    """Issue 16 F: --schema public would have dropped live v2."""
    query(fresh_database, sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
    query(fresh_database, sql.SQL("create table {}.keep (a int)").format(sql.Identifier(schema)))
    assert restore_v1.main([str(restore_v1.SAMPLE_DUMP), "--schema", schema]) == 1
    assert query(fresh_database, sql.SQL("select count(*) from {}.keep").format(sql.Identifier(schema))) == [(0,)]


def test_a_schema_holding_other_tables_is_never_replaced(fresh_database: str) -> None:
    query(fresh_database, "create schema mine; create table mine.notes (a int); create table mine.diary (a int)")
    with pytest.raises(lifeos_env.MigrationError, match="refusing to restore into schema mine: it holds diary"):
        restore_v1.restore(load_settings(), restore_v1.SAMPLE_DUMP, schema="mine")
    assert query(fresh_database, "select count(*) from mine.diary") == [(0,)]


def server_major(database: str) -> int:
    return int(query(database, "show server_version_num")[0][0]) // 10000


@pytest.mark.parametrize("kind", ["plain", "custom", "tar", "directory"])
def test_dumps_of_every_pg_dump_version_here_restore_every_value(
    kind: str, supabase_source: tuple[str, dict[str, Path]], fresh_database: str, tmp_path: Path
) -> None:
    """Issue 16 J: pg_dump 15 (when installed and the server is 15), 16 and 18 (archive format 1.16) all read."""
    source = supabase_source[0]
    versions = [major for major in lifeos_env.pg_clients("pg_dump") if major >= server_major(source)]
    assert 18 in versions and 16 in versions
    for major in versions:
        dump = make_supabase_dump.write_dumps(source, tmp_path / str(major), [kind], major)[kind]
        assert_restored_exactly(source, fresh_database, restore_v1.restore(load_settings(), dump))


def test_one_place_finds_the_postgresql_client_programs() -> None:
    found = lifeos_env.pg_clients("pg_restore")
    assert 18 in found and 16 in found and list(found) == sorted(found, reverse=True)
    assert lifeos_env.pg_client("pg_restore") == found[18]
    with pytest.raises(lifeos_env.MigrationError, match="pg_restore 9 is not installed"):
        lifeos_env.pg_client("pg_restore", 9)
