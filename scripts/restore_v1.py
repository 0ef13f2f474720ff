"""Restore Life OS v1 from a Supabase pg_dump (or a live v1 database) into the v1 schema.

    python scripts/restore_v1.py FILE           # plain, custom (-Fc), tar or directory dump, or a CLI data dump
    python scripts/restore_v1.py --from-dsn DSN # a live v1 database, read over a read-only session

The dump is untrusted input and none of its text is ever sent to the server as
SQL. Only the 11 app tables of models/staging/v1/_v1__sources.yml (schema
public) and storage.buckets / storage.objects are read: their column names and
types from CREATE TABLE, their rows from COPY or INSERT. Each table is created
from names and types only and its rows are streamed in with COPY FROM STDIN.
Custom archives are narrowed to those tables with pg_restore's TOC list first.
Everything loads into a fresh schema in one transaction; when every table's row
count equals the dump's, the old v1 schema is dropped and the new one renamed
in its place, in the same transaction. Any failure leaves v1 as it was.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import psycopg2.extensions
import yaml
from psycopg2 import sql
from rich.console import Console
from rich.table import Table as RichTable

import lifeos_env

SOURCES_YML = lifeos_env.ROOT / "models" / "staging" / "v1" / "_v1__sources.yml"
SAMPLE_DUMP = lifeos_env.ROOT / "sample" / "life_os_v1_backup.sql"
# The blob inventory, Supabase Storage's tables: target -> (name in schema storage, the columns the files step
# needs, the types of all the columns Supabase gives them, for dumps without DDL such as CLI data dumps).
STORAGE_TABLES = {
    "storage_buckets": ("buckets", ["id", "name"], {
        "id": "text", "name": "text", "owner": "uuid", "owner_id": "text", "public": "boolean",
        "created_at": "timestamptz", "updated_at": "timestamptz", "file_size_limit": "bigint",
        "allowed_mime_types": "text[]", "type": "text",
    }),
    "storage_objects": ("objects", ["id", "bucket_id", "name", "metadata"], {
        "id": "uuid", "bucket_id": "text", "name": "text", "owner": "uuid", "owner_id": "text",
        "created_at": "timestamptz", "updated_at": "timestamptz", "last_accessed_at": "timestamptz",
        "metadata": "jsonb", "user_metadata": "jsonb", "version": "text", "level": "integer",
    }),
}  # fmt: skip
# Archive format -> the first pg_dump (and pg_restore) major version that writes it.
ARCHIVE_FORMATS = {"1.14": 12, "1.15": 16, "1.16": 17}

IDENT = r'"(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_$]*'
QUALNAME = rf"(?:{IDENT})\s*\.\s*(?:{IDENT})"
CREATE_TABLE = re.compile(rf"CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?({QUALNAME})\s*\(", re.I)
TOC_ENTRY = re.compile(r"\d+; \d+ \d+ (TABLE DATA|TABLE) (\S+) (\S+)")
COPY_HEAD = re.compile(rf"COPY\s+({QUALNAME})", re.I)
COPY_STDIN = re.compile(rf"COPY\s+({QUALNAME})\s*(?:\(((?:{IDENT}|\s|,)*)\))?\s+FROM\s+stdin", re.I)
INSERT_HEAD = re.compile(rf"INSERT\s+INTO\s+({QUALNAME})", re.I)
INSERT = re.compile(
    rf"INSERT\s+INTO\s+({QUALNAME})\s*(?:\(((?:{IDENT}|\s|,)*)\))?\s*"
    r"(?:OVERRIDING\s+(?:SYSTEM|USER)\s+VALUE\s+)?VALUES\s*(.*)",
    re.I | re.S,
)
VALUE_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<bits>B'[01]*')|(?P<word>NULL|true|false)"
    r"|(?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<punct>[(),]))",
    re.I,
)
# A SQL token that changes the lexer's state: quotes, comments, statement ends.
LEX_TOKEN = re.compile(r"""[Ee]'|'|"|(?<![\w$])\$(?:[A-Za-z_]\w*)?\$|--|;""")
CLOSERS = {
    "'": re.compile(r"(?:[^']|'')*'(?!')"),
    "E'": re.compile(r"(?:[^'\\]|\\.|'')*'(?!')", re.S),
    '"': re.compile(r'(?:[^"]|"")*"(?!")'),
}
# A built-in type as format_type() writes it: words, an optional typmod, time zone, array brackets.
BUILTIN_TYPE = re.compile(
    r"[a-z][a-z0-9_]*(?: [a-z][a-z0-9_]*)*(?: ?\(\d+(?:, ?\d+)?\))?(?: with(?:out)? time zone)?(?:\[\d*\])*"
)
COLUMN_END = re.compile(r"\s(?:DEFAULT|NOT|NULL|COLLATE|CONSTRAINT|GENERATED|CHECK|REFERENCES|PRIMARY|UNIQUE)\b", re.I)
TABLE_CONSTRAINT = re.compile(r"(?:CONSTRAINT|CHECK|PRIMARY|UNIQUE|FOREIGN|EXCLUDE|LIKE)\b", re.I)
COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

console = Console()
MigrationError = lifeos_env.MigrationError


@dataclass(frozen=True)
class Table:
    """One table restored into v1: where it lives in the dump and the columns the models expect."""

    target: str  # name in the v1 schema
    schema: str  # schema in the dump
    name: str  # name in the dump
    expected: dict[str, str]  # column -> type: the columns the models need
    known: dict[str, str]  # column -> type of any column it may have, for dumps without DDL
    required: bool  # a missing table is an error (else restored empty, with a warning)

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}"


def contract() -> dict[tuple[str, str], Table]:
    """The tables to restore, keyed by (schema, name) in the dump: the sources YAML plus Storage's two."""
    source = next(s for s in yaml.safe_load(SOURCES_YML.read_text())["sources"] if s["name"] == "v1")
    columns = {t["name"]: {c["name"]: c["data_type"] for c in t["columns"]} for t in source["tables"]}
    tables = {name: Table(name, "public", name, types, types, True) for name, types in columns.items()}
    for target, (name, needed, known) in STORAGE_TABLES.items():
        expected = columns.get(target, {c: known[c] for c in needed})  # a storage table the YAML declares is required
        tables[target] = Table(target, "storage", name, expected, known | expected, target in columns)
    return {(t.schema, t.name): t for t in tables.values()}


def excerpt(text: str) -> str:
    """The start of some dump text, on one line, for an error message."""
    return "`" + " ".join(text.split())[:80] + "`"


def unquote(identifier: str) -> str:
    identifier = identifier.strip()
    if identifier.startswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier.lower()


def qualname(text: str) -> tuple[str, str]:
    schema, name = re.findall(IDENT, text)
    return unquote(schema), unquote(name)


def identifiers(text: str | None) -> list[str]:
    return [unquote(i) for i in re.findall(IDENT, text or "")]


@dataclass
class Loader:
    """Creates the restored tables in a fresh schema and streams their rows in with COPY FROM STDIN."""

    cur: psycopg2.extensions.cursor
    schema: str
    tables: dict[tuple[str, str], Table]
    columns: dict[str, list[str]] = field(default_factory=dict)  # target -> created columns
    dump_rows: dict[str, int] = field(default_factory=dict)  # target -> rows read from the dump
    loaded_rows: dict[str, int] = field(default_factory=dict)  # target -> rows the server's COPY reported
    warnings: list[str] = field(default_factory=list)

    def column_type(self, table: Table, column: str, declared: str) -> str:
        """`declared` when it is a built-in type the server knows, else text (with a warning)."""
        if BUILTIN_TYPE.fullmatch(declared):
            self.cur.execute("select to_regtype(%s) is not null", (declared,))
            if self.cur.fetchone()[0]:
                return declared
        self.warnings.append(f"{table.label}.{column} has type {declared!r}, restored as text")
        return "text"

    def create(self, table: Table, columns: list[tuple[str, str]]) -> None:
        if table.target in self.columns:
            raise MigrationError(f"the dump defines {table.label} twice")
        names = [name for name, _ in columns]
        missing = [c for c in table.expected if c not in names]
        if missing:
            raise MigrationError(
                f"{table.label} in the dump lacks column(s) {', '.join(missing)} that {SOURCES_YML.name} expects"
            )
        extra = [c for c in names if c not in table.expected]
        if extra and table.schema == "public":  # Storage's own columns are no drift
            self.warnings.append(f"{table.label} has extra columns, kept in {table.target}: {', '.join(extra)}")
        definitions = [
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(self.column_type(table, name, declared)))
            for name, declared in columns
        ]
        self.cur.execute(
            sql.SQL("create table {}.{} ({})").format(
                sql.Identifier(self.schema), sql.Identifier(table.target), sql.SQL(", ").join(definitions)
            )
        )
        self.columns[table.target] = names

    def create_from_contract(self, table: Table, data_columns: Iterable[str] = ()) -> None:
        """For dumps without DDL (data-only): the data's columns and the expected ones, typed as far as known."""
        names = list(data_columns) + [c for c in table.expected if c not in data_columns]
        self.create(table, [(c, table.known.get(c, "text")) for c in names])

    def copy(self, table: Table, columns: list[str], lines: Iterable[str]) -> None:
        """Stream COPY text rows (one per line, newline-terminated) into the table."""
        if table.target not in self.columns:
            self.create_from_contract(table, columns)
        unknown = [c for c in columns if c not in self.columns[table.target]]
        if unknown:
            raise MigrationError(f"data for {table.label} names column(s) its CREATE TABLE lacks: {', '.join(unknown)}")
        stream = CopyStream(iter(lines))
        self.cur.copy_expert(
            sql.SQL("copy {}.{} ({}) from stdin")
            .format(
                sql.Identifier(self.schema),
                sql.Identifier(table.target),
                sql.SQL(", ").join(map(sql.Identifier, columns)),
            )
            .as_string(self.cur),
            stream,
        )
        if stream.error is not None:
            raise stream.error
        self.dump_rows[table.target] = self.dump_rows.get(table.target, 0) + stream.rows
        self.loaded_rows[table.target] = self.loaded_rows.get(table.target, 0) + self.cur.rowcount  # the server's count

    def finish(self, data_only: bool) -> list[tuple[Table, int, int]]:
        """Create what the dump lacks (or fail), and check every table's count; return (table, dump, loaded)."""
        for table in self.tables.values():
            if table.target not in self.columns:
                if table.required and not data_only:
                    raise MigrationError(f"the dump has no table {table.label}, which {SOURCES_YML.name} expects")
                if not data_only:
                    self.warnings.append(f"the dump has no {table.label}: {table.target} is restored empty")
                self.create_from_contract(table)
        counts = []
        for table in self.tables.values():
            loaded = self.loaded_rows.get(table.target, 0)
            expected = self.dump_rows.get(table.target, 0)
            if loaded != expected:
                raise MigrationError(f"{table.label}: {loaded} rows loaded but the dump holds {expected}")
            counts.append((table, expected, loaded))
        return counts


class CopyStream:
    """A file-like view of COPY text lines for copy_expert, counting the rows it hands out.

    An error while reading the lines ends the stream; the caller raises it once COPY returns.
    """

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines = lines
        self.rows = 0
        self.error: MigrationError | None = None

    def read(self, size: int = -1) -> str:
        chunk: list[str] = []
        length = 0
        try:
            for line in self.lines:
                chunk.append(line)
                self.rows += 1
                length += len(line)
                if length >= size > 0:
                    break
        except MigrationError as error:
            self.error = error
            return ""
        return "".join(chunk)


def copy_line(values: list[str | None]) -> str:
    return "\t".join("\\N" if v is None else v.translate(COPY_ESCAPES) for v in values) + "\n"


def insert_rows(text: str, label: str) -> Iterator[str]:
    """The VALUES lists of an INSERT as COPY text lines. Only literals are accepted, nothing that could run."""
    row: list[str | None] | None = None
    expect_value = False
    position = 0
    while token := VALUE_TOKEN.match(text, position):
        kind, value = token.lastgroup, token.group(token.lastgroup)
        if kind != "punct" and row is not None and expect_value:
            if kind == "string":
                row.append(value[1:-1].replace("''", "'"))
            else:
                row.append(value[2:-1] if kind == "bits" else None if value.upper() == "NULL" else value)
            expect_value = False
        elif value == "(" and row is None:
            row, expect_value = [], True
        elif value == "," and not expect_value:
            expect_value = row is not None
        elif value == ")" and row is not None and not expect_value:
            yield copy_line(row)
            row = None
        else:
            break
        position = token.end()
    if row is not None or text[position:].strip():
        raise MigrationError(
            f"INSERT into {label} holds something other than literal values: {excerpt(text[position:])}"
        )


class DumpReader:
    """Reads plain dump text (a file, or pg_restore's output) strictly: statements are lexed, never run.

    Only CREATE TABLE, COPY ... FROM stdin and INSERT for the restored tables are acted on; every
    other statement (functions, triggers, policies, grants, extensions, psql meta-commands) is skipped.
    """

    def __init__(self, stream: Iterable[bytes], name: str, loader: Loader) -> None:
        self.stream = enumerate(stream, start=1)
        self.name = name
        self.loader = loader
        self.lineno = 0
        self.header = self.footer = False
        self.saw_ddl = False
        self.last_statement = ""
        self.ignored: list[str] = []  # public tables outside the contract
        self.run: tuple[Table, list[str]] | None = None
        self.run_rows: list[str] = []

    def lines(self) -> Iterator[str]:
        for lineno, raw in self.stream:
            self.lineno = lineno
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise MigrationError(
                    f"encoding problem: line {self.lineno} of {self.name} is not UTF-8 ({error.reason})"
                ) from None
            yield line

    def statements(self, lines: Iterator[str]) -> Iterator[str]:
        """Complete top-level statements (comments dropped); a COPY's data lines are left for the caller."""
        pending: list[str] = []
        closer: re.Pattern[str] | None = None
        for line in lines:
            if closer is None and line.lstrip().startswith("\\"):
                continue  # a psql meta-command such as \restrict: never run, nothing to read
            position = 0
            while position < len(line):
                if closer is not None:
                    end = closer.match(line, position)
                    if end is None:
                        pending.append(line[position:])
                        break
                    pending.append(end.group())
                    position, closer = end.end(), None
                    continue
                token = LEX_TOKEN.search(line, position)
                if token is None:
                    pending.append(line[position:])
                    break
                text = token.group()
                if text == "--":
                    if line.startswith("-- PostgreSQL database dump"):  # pg_dump's opening and closing lines
                        self.footer = line.rstrip() == "-- PostgreSQL database dump complete"
                        self.header = True
                    pending.append(line[position : token.start()] + "\n")
                    break
                if text != ";":
                    pending.append(line[position : token.end()])
                    position = token.end()
                    closer = CLOSERS.get(text.upper()) or re.compile(rf".*?{re.escape(text)}", re.S)
                    continue
                pending.append(line[position : token.start()])
                position = token.end()
                statement, pending = "".join(pending).strip(), []
                self.last_statement = statement
                if COPY_STDIN.match(statement) and line[position:].strip():
                    raise MigrationError(f"line {self.lineno} of {self.name}: text after a COPY ... FROM stdin")
                yield statement
        if "".join(pending).strip():
            raise MigrationError(f"truncated dump: {self.name} ends inside a statement (line {self.lineno})")

    def copy_data(self, lines: Iterator[str], label: str) -> Iterator[str]:
        for line in lines:
            if line.rstrip("\r\n") == "\\.":
                return
            yield line
        raise MigrationError(f"truncated dump: the COPY data of {label} in {self.name} ends before its \\. line")

    def read(self) -> None:
        lines = self.lines()
        tables = self.loader.tables
        for statement in self.statements(lines):
            if statement.upper().startswith("SET CLIENT_ENCODING"):
                encoding = statement.split("=")[-1].strip(" '\"").upper()
                if encoding not in ("UTF8", "UTF-8"):
                    raise MigrationError(
                        f"encoding problem: {self.name} is in {encoding}; dump it with --encoding=UTF8"
                    )
            elif create := CREATE_TABLE.match(statement):
                self.saw_ddl = True
                name = qualname(create.group(1))
                if name in tables:
                    self.loader.create(tables[name], table_columns(statement[create.end() :]))
                elif name[0] == "public":
                    self.ignored.append(".".join(name))
            elif head := COPY_HEAD.match(statement):
                self.copy(statement, qualname(head.group(1)), lines)
            elif (head := INSERT_HEAD.match(statement)) and qualname(head.group(1)) in tables:
                self.insert(statement, tables[qualname(head.group(1))])
        self.flush()
        if self.header and not self.footer:
            raise MigrationError(f"truncated dump: {self.name} lacks pg_dump's closing 'dump complete' line")
        if not self.header and not self.last_statement.upper().startswith("RESET ALL"):
            raise MigrationError(
                f"truncated dump: {self.name} has neither pg_dump's closing line nor the CLI's RESET ALL"
            )

    def copy(self, statement: str, name: tuple[str, str], lines: Iterator[str]) -> None:
        copy = COPY_STDIN.fullmatch(statement)
        table = self.loader.tables.get(name)
        if copy is None:
            if table is not None:
                raise MigrationError(f"refusing {excerpt(statement)}: only COPY ... FROM stdin data is read")
            return  # not data: nothing follows it, and it is never run
        data = self.copy_data(lines, ".".join(name))
        if table is not None:
            if table.target in self.loader.dump_rows:
                raise MigrationError(f"the dump holds two data sections for {table.label}")
            self.loader.copy(table, self.columns(table, copy.group(2)), data)
        for _ in data:  # the rest of the data of a table that is not restored
            pass

    def insert(self, statement: str, table: Table) -> None:
        """Collect the rows of consecutive INSERTs into one table (CLI dumps write one per row) for one COPY."""
        match = INSERT.fullmatch(statement)
        if match is None:
            raise MigrationError(f"INSERT into {table.label} is malformed: {excerpt(statement)}")
        columns = self.columns(table, match.group(2))
        if self.run != (table, columns):
            self.flush()
            self.run = (table, columns)
        self.run_rows.extend(insert_rows(match.group(3), table.label))

    def columns(self, table: Table, listed: str | None) -> list[str]:
        """The columns a COPY or INSERT lists, else those of the table's CREATE TABLE."""
        columns = identifiers(listed) or self.loader.columns.get(table.target)
        if columns is None:
            raise MigrationError(f"data for {table.label} names no columns and the dump has no CREATE TABLE for it")
        return columns

    def flush(self) -> None:
        if self.run is not None:
            self.loader.copy(*self.run, self.run_rows)
            self.run, self.run_rows = None, []


def table_columns(body: str) -> list[tuple[str, str]]:
    """(name, type) of each column in the body of a CREATE TABLE, after its '('; stored generated columns skipped."""
    elements, depth, start, quote = [], 0, 0, ""
    for position, char in enumerate(body):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")" and depth == 0:
            elements.append(body[start:position])
            break
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            elements.append(body[start:position])
            start = position + 1
    columns = []
    for element in map(str.strip, elements):
        if not element or TABLE_CONSTRAINT.match(element) or re.search(r"GENERATED\s+ALWAYS\s+AS\s*\(", element, re.I):
            continue
        name = re.match(IDENT, element)
        if name is None:
            raise MigrationError(f"cannot read the column definition {excerpt(element)}")
        rest = element[name.end() :]
        end = COLUMN_END.search(rest)
        declared = (rest[: end.start()] if end else rest).strip()
        columns.append((unquote(name.group()), declared))
    return columns


def client_binaries(program: str) -> list[tuple[int, str]]:
    """(major version, path) of every `program` here (pgserver's, Debian's, PATH's), newest first."""
    candidates = {shutil.which(program), f"/usr/bin/{program}"}
    spec = importlib.util.find_spec("pgserver")
    if spec and spec.origin:
        candidates.add(str(Path(spec.origin).parent / "pginstall" / "bin" / program))
    found = []
    for path in filter(None, candidates):
        if Path(path).is_file():
            version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
            found.append((int(re.search(r"\(PostgreSQL\) (\d+)", version).group(1)), path))
    return sorted(found, reverse=True)


def pg_restore_failure(path: Path, stderr: str, pg_restore: tuple[int, str]) -> MigrationError:
    if version := re.search(r"unsupported version \((\d+\.\d+)\)", stderr):
        needed = ARCHIVE_FORMATS.get(version.group(1))
        wanted = f"pg_restore {needed} or newer" if needed else f"a pg_restore newer than {pg_restore[0]}"
        return MigrationError(
            f"{path} is archive format {version.group(1)}, newer than the local pg_restore {pg_restore[0]} reads:"
            f" it needs {wanted}"
        )
    if "end of file" in stderr or "truncated" in stderr:
        return MigrationError(f"truncated dump: pg_restore cannot read {path} to its end")
    lines = [line for line in stderr.splitlines() if line.strip()]
    return MigrationError(f"pg_restore cannot read {path}: {lines[-1] if lines else 'no message'}")


def read_archive(path: Path, loader: Loader) -> DumpReader:
    """A custom, tar or directory archive: pg_restore prints only the restored tables' entries, read strictly."""
    found = client_binaries("pg_restore")
    if not found:
        raise MigrationError(f"{path} is a pg_dump archive, and reading one needs pg_restore, which is not installed")
    pg_restore = found[0]
    listing = subprocess.run([pg_restore[1], "-l", str(path)], capture_output=True, text=True)
    if listing.returncode != 0:
        raise pg_restore_failure(path, listing.stderr, pg_restore)
    wanted, ignored = [], []
    for line in listing.stdout.splitlines():
        if entry := TOC_ENTRY.match(line):
            kind, schema, name = entry.groups()
            if (schema, name) in loader.tables:
                wanted.append(line)
            elif (kind, schema) == ("TABLE", "public"):
                ignored.append(f"public.{name}")
    with tempfile.NamedTemporaryFile("w", suffix=".list") as toc:
        toc.write("".join(f"{line}\n" for line in wanted))
        toc.flush()
        command = [pg_restore[1], "--no-owner", "--no-privileges", "-L", toc.name, "-f", "-", str(path)]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
            reader = DumpReader(process.stdout, str(path), loader)
            failure = None
            try:
                reader.read()
            except MigrationError as error:
                failure = error
            stderr = process.communicate()[1].decode(errors="replace")
    if process.returncode != 0:
        raise pg_restore_failure(path, stderr, pg_restore)
    if failure is not None:
        raise failure
    reader.ignored = ignored
    return reader


def read_file(path: Path, loader: Loader) -> bool:
    """Read a dump file of any kind into the loader; True when it was data-only (no CREATE TABLE)."""
    if not path.exists():
        raise MigrationError(f"no dump at {path}")
    if path.is_dir():
        reader = read_archive(path, loader)
    else:
        with path.open("rb") as file:
            head = file.read(512)
            if head.startswith(b"PGDMP") or head[257:262] == b"ustar":
                reader = read_archive(path, loader)
            else:
                check_plain(path, head)
                file.seek(0)
                reader = DumpReader(file, str(path), loader)
                reader.read()
    if reader.ignored:
        loader.warnings.append("public tables outside the v1 contract, not restored: " + ", ".join(reader.ignored))
    return not reader.saw_ddl


def check_plain(path: Path, head: bytes) -> None:
    """Refuse what is no pg_dump text at all: a plain dump opens with comments, SET or a psql meta-command."""
    if not head:
        raise MigrationError(f"not a pg_dump file: {path} is empty")
    if head.startswith(b"\x1f\x8b"):
        raise MigrationError(f"not a pg_dump file: {path} is gzip-compressed; gunzip it first")
    first = next((line.strip() for line in head.decode("utf-8", "replace").splitlines() if line.strip()), "")
    if not first.startswith(("--", "SET ", "\\")):
        raise MigrationError(f"not a pg_dump file: {path} starts with {excerpt(first[:40])}")


def read_live(dsn: str, loader: Loader) -> None:
    """Copy the tables from a live v1 database: a read-only session, one repeatable-read snapshot.

    No startup options, so that it works through Supabase's connection pooler too.
    """
    try:
        source = psycopg2.connect(dsn)
    except psycopg2.OperationalError as error:
        raise MigrationError(f"cannot connect to the v1 database: {str(error).strip().splitlines()[0]}") from None
    try:
        source.autocommit = True
        with source.cursor() as cur:
            cur.execute("set default_transaction_read_only = on")
        source.autocommit = False
        source.set_session(isolation_level="REPEATABLE READ", readonly=True)
        source.set_client_encoding("UTF8")
        with source.cursor() as cur:
            cur.execute("set local extra_float_digits = 3")  # exact floats, whatever the database's default
            for table in loader.tables.values():
                cur.execute(
                    "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a"
                    " join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace"
                    " where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped"
                    " and a.attgenerated = '' order by a.attnum",
                    (table.schema, table.name),
                )
                columns = cur.fetchall()
                if not columns:
                    continue  # reported by Loader.finish like a dump without the table
                loader.create(table, columns)
                names = sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns)
                with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as spool:
                    cur.copy_expert(
                        sql.SQL("copy (select {} from {}.{}) to stdout")
                        .format(names, sql.Identifier(table.schema), sql.Identifier(table.name))
                        .as_string(cur),
                        spool,
                    )
                    spool.seek(0)
                    loader.copy(table, [name for name, _ in columns], spool)
    finally:
        source.close()


def restore(dump: Path | None = None, dsn: str | None = None, schema: str = "v1") -> dict[str, int]:
    """Restore v1 from a dump file or a live database into `schema`, atomically; return rows per table."""
    tables = contract()
    incoming = f"{schema[:40]}_restore_{uuid.uuid4().hex[:8]}"
    conn = lifeos_env.connect()
    try:
        conn.set_client_encoding("UTF8")
        with conn, conn.cursor() as cur:
            cur.execute(sql.SQL("create schema {}").format(sql.Identifier(incoming)))
            loader = Loader(cur, incoming, tables)
            if dsn is not None:
                read_live(dsn, loader)
                data_only = False
            else:
                data_only = read_file(Path(dump), loader)
            counts = loader.finish(data_only)
            cur.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))
            cur.execute(
                sql.SQL("alter schema {} rename to {}").format(sql.Identifier(incoming), sql.Identifier(schema))
            )
    except psycopg2.Error as error:
        message = (error.diag.message_primary or str(error)).strip().splitlines()[0]
        context = (error.diag.context or "").strip().splitlines()
        raise MigrationError(
            f"the server refused the restore: {message}" + (f" ({context[0]})" if context else "")
        ) from None
    finally:
        conn.close()
    report(schema, counts, loader.warnings, dump or "the live database")
    return {table.target: loaded for table, _, loaded in counts}


def report(schema: str, counts: list[tuple[Table, int, int]], warnings: list[str], source: object) -> None:
    for warning in warnings:
        console.print(f"[yellow]warning: {warning}[/yellow]", soft_wrap=True)
    table = RichTable(title=f"v1 restored into schema {schema} from {source}")
    for heading in ("table", "from", "rows in dump", "rows loaded"):
        table.add_column(heading, justify="right" if heading.startswith("rows") else "left")
    for entry, in_dump, loaded in counts:
        table.add_row(entry.target, entry.label, str(in_dump), str(loaded))
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("dump", nargs="?", type=Path, help="the pg_dump file (plain, custom, tar, directory, CLI)")
    source.add_argument("--from-dsn", metavar="DSN", help="read a live v1 database instead (read-only session)")
    parser.add_argument("--schema", default="v1", help="the schema to restore into (dbt var v1_schema, default v1)")
    args = parser.parse_args(argv)
    try:
        lifeos_env.ensure_target()
        restore(args.dump, args.from_dsn, args.schema)
    except MigrationError as error:
        console.print(f"[red]restore failed: {error}[/red]", soft_wrap=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
