"""Restore Life OS v1 from a Supabase pg_dump (or a live v1 database) into the v1 schema.

    python scripts/restore_v1.py FILE           # plain, custom (-Fc), tar or directory dump, or a CLI data dump
    python scripts/restore_v1.py --from-dsn DSN # a live v1 database, read over a read-only session

The dump is untrusted input and none of its text is ever sent to the server as
SQL. Every statement outside COPY data goes through PostgreSQL's own grammar
(pglast): one it cannot parse is an error. Only the 11 app tables of
models/staging/v1/_v1__sources.yml (schema public) and storage.buckets /
storage.objects are read: their column names and types from CREATE TABLE, their
rows from COPY or INSERT literals. Each table is created from names and types
only and its rows are streamed in with COPY FROM STDIN. Archives are read with
the newest pg_restore here, checked with `pg_restore -l` before any transaction
opens and narrowed to those tables; a pg_restore that makes no progress for
STALL_SECONDS is stopped. Everything loads into a fresh schema in one
transaction; when every table's row count equals the dump's, the old v1 schema
is dropped and the new one renamed in its place, in the same transaction. Any
failure leaves v1 as it was.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psycopg2
import psycopg2.extensions
import yaml
from pglast import ast, enums, parse_sql
from pglast.parser import ParseError, scan
from pglast.stream import RawStream
from pglast.visitors import Visitor
from psycopg2 import sql
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

import generate_sample
import lifeos_env

SOURCES_YML = lifeos_env.ROOT / "models" / "staging" / "v1" / "_v1__sources.yml"
V1_SCHEMA = lifeos_env.dbt_var("v1_schema")
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
TOC_ENTRY = re.compile(r"\d+; \d+ \d+ (TABLE DATA|TABLE) (\S+) (\S+)")
# A child process (pg_restore) that neither reads its input nor writes output for this long is stopped.
STALL_SECONDS = 10.0
# When a line ends like this, the text so far is scanned for complete statements at once: a COPY FROM stdin
# must be recognised before its data lines. Other statement ends are found with scans spaced out (see split).
MAY_END_COPY = re.compile(r"stdin\s*;\s*$", re.I)
FOOTER = "-- PostgreSQL database dump complete"
# Settings that change how PostgreSQL reads a value: the dump's are applied to the restore's transaction.
VALUE_SETTINGS = ("datestyle", "intervalstyle", "timezone")
# What an ALTER TABLE on a restored table may do without changing its rows or columns.
HARMLESS_ALTERATIONS = {
    getattr(enums.AlterTableType, name)
    for name in (
        "AT_AddConstraint", "AT_ValidateConstraint", "AT_AddIndexConstraint", "AT_ChangeOwner", "AT_ColumnDefault",
        "AT_SetNotNull", "AT_AddIdentity", "AT_SetIdentity", "AT_ReplicaIdentity", "AT_SetStatistics",
        "AT_SetOptions", "AT_ResetOptions", "AT_SetStorage", "AT_SetCompression", "AT_SetRelOptions",
        "AT_ResetRelOptions", "AT_ReplaceRelOptions", "AT_ClusterOn", "AT_EnableRowSecurity",
        "AT_DisableRowSecurity", "AT_ForceRowSecurity", "AT_NoForceRowSecurity", "AT_EnableTrig",
        "AT_EnableAlwaysTrig", "AT_EnableReplicaTrig", "AT_DisableTrig", "AT_EnableTrigAll", "AT_DisableTrigAll",
        "AT_EnableTrigUser", "AT_DisableTrigUser", "AT_SetLogged", "AT_SetUnLogged",
    )
}  # fmt: skip
# Statements that change a table's rows or shape when PostgreSQL runs them: refused on a restored table.
CHANGES_TABLE = (ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt, ast.TruncateStmt, ast.RenameStmt,
                 ast.AlterObjectSchemaStmt, ast.DropStmt, ast.AlterTableStmt)  # fmt: skip
# Statements that act on later rows (triggers, rules): refused on a restored table before its data.
ACTS_ON_ROWS = (ast.CreateTrigStmt, ast.RuleStmt)

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
    return "`" + " ".join(text[:400].split())[:80] + "`"


def dotted(relation: ast.RangeVar) -> str:
    return ".".join(filter(None, (relation.schemaname, relation.relname)))


@dataclass
class Loader:
    """Creates the restored tables in a fresh schema and streams their rows in with COPY FROM STDIN."""

    cur: psycopg2.extensions.cursor
    schema: str
    tables: dict[tuple[str, str], Table]
    columns: dict[str, list[str]] = field(default_factory=dict)  # target -> created columns
    keys: dict[str, list[list[str]]] = field(default_factory=dict)  # target -> the dump's unique keys
    dump_rows: dict[str, int] = field(default_factory=dict)  # target -> rows read from its data section
    loaded_rows: dict[str, int] = field(default_factory=dict)  # target -> rows the server's COPY reported
    warnings: list[str] = field(default_factory=list)
    progress: Callable[[Table, int], None] = lambda table, rows: None  # rows of `table` handed to COPY so far

    def table(self, relation: ast.RangeVar) -> Table | None:
        """The restored table a name in the dump refers to, if any; a restored table's bare name is an error."""
        if relation.schemaname is None:
            if any(table.name == relation.relname for table in self.tables.values()):
                raise MigrationError(f"the dump names table {relation.relname} without its schema")
            return None
        return self.tables.get((relation.schemaname, relation.relname))

    def column_type(self, table: Table, column: str, declared: str) -> str:
        """`declared` when it names a built-in type (of pg_catalog) the server knows, else text (with a warning)."""
        self.cur.execute(
            "select exists (select from pg_type where oid = to_regtype(%s)"
            " and typnamespace = 'pg_catalog'::regnamespace)",
            (declared,),
        )
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
        """Stream a table's one data section, COPY text rows (one per line, newline-terminated), into it."""
        if table.target in self.dump_rows:
            raise MigrationError(f"the dump holds two data sections for {table.label}")
        if table.target not in self.columns:
            self.create_from_contract(table, columns)
        unknown = [c for c in columns if c not in self.columns[table.target]]
        if unknown:
            raise MigrationError(f"data for {table.label} names column(s) its CREATE TABLE lacks: {', '.join(unknown)}")
        stream = CopyStream(iter(lines), lambda rows: self.progress(table, rows))
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
        self.dump_rows[table.target] = stream.rows
        self.loaded_rows[table.target] = self.cur.rowcount  # the server's count

    def finish(self, data_only: bool) -> list[tuple[Table, int, int]]:
        """Create what the dump lacks (or fail), check every count and key; return (table, dump, loaded)."""
        if not any(t.schema == "public" and t.target in self.dump_rows for t in self.tables.values()):
            raise MigrationError("the dump holds no data for any of the v1 tables: it is no v1 data dump")
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
            for key in self.keys.get(table.target, []):
                self.check_key(table, key)
            counts.append((table, expected, loaded))
        return counts

    def check_key(self, table: Table, key: list[str]) -> None:
        """A primary key or unique constraint of the dump holds on the rows, as it does when PostgreSQL restores it."""
        columns = sql.SQL(", ").join(map(sql.Identifier, key))
        self.cur.execute(
            sql.SQL(
                "select exists (select from {}.{} where ({c}) is not null group by {c} having count(*) > 1)"
            ).format(sql.Identifier(self.schema), sql.Identifier(table.target), c=columns)
        )
        if self.cur.fetchone()[0]:
            raise MigrationError(f"{table.label} holds two rows with the same {', '.join(key)}, which its key forbids")


class CopyStream:
    """A file-like view of COPY text lines for copy_expert, counting the rows it hands out.

    An error while reading the lines ends the stream; the caller raises it once COPY returns.
    """

    def __init__(self, lines: Iterator[str], progress: Callable[[int], None]) -> None:
        self.lines = lines
        self.rows = 0
        self.progress = progress  # told the rows handed out so far after each chunk
        self.error: Exception | None = None

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
        except Exception as error:  # raised again, unchanged, once COPY returns
            self.error = error
            return ""
        self.progress(self.rows)
        return "".join(chunk)


def copy_line(values: list[str | None]) -> str:
    return "\t".join(map(generate_sample.copy_text, values)) + "\n"


def literal(value: ast.Node) -> str | None:
    """The text of a constant as PostgreSQL's grammar read it; anything that is not a constant is refused."""
    if not isinstance(value, ast.A_Const):
        raise ValueError
    if value.isnull:
        return None
    constant = value.val
    if isinstance(constant, ast.Integer):
        return str(constant.ival)
    if isinstance(constant, ast.Float):
        return constant.fval
    if isinstance(constant, ast.Boolean):
        return "true" if constant.boolval else "false"
    if isinstance(constant, ast.BitString):
        return constant.bsval  # b0101 or x1F: bit's input reads both
    return constant.sval


def insert_rows(statement: ast.InsertStmt, table: Table, columns: list[str]) -> Iterator[str]:
    """The VALUES lists of an INSERT as COPY text lines. Only constants are accepted, nothing that could run."""
    values = statement.selectStmt
    plain = (
        isinstance(values, ast.SelectStmt)
        and values.valuesLists
        and not (statement.onConflictClause or statement.returningClause or statement.withClause)
    )
    try:
        if not plain:
            raise ValueError
        for row in values.valuesLists:
            if len(row) != len(columns):
                raise MigrationError(
                    f"an INSERT into {table.label} has a row of {len(row)} values for {len(columns)} columns"
                )
            yield copy_line([literal(value) for value in row])
    except ValueError:
        raise MigrationError(
            f"INSERT into {table.label} holds something other than literal values: {excerpt(RawStream()(statement))}"
        ) from None


@dataclass(frozen=True)
class Statement:
    """One top-level statement of the dump as PostgreSQL's grammar parsed it."""

    node: ast.Node
    text: str


class SetConfigCalls(Visitor):
    """The (setting, value) of each set_config(constant, constant, ...) call in a statement."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str | None]] = []

    def visit_FuncCall(self, ancestors: object, node: ast.FuncCall) -> None:
        if node.funcname[-1].sval == "set_config" and node.args and len(node.args) >= 2:
            try:
                self.calls.append((str(literal(node.args[0])), literal(node.args[1])))
            except ValueError:
                pass  # a setting named by an expression: nothing pg_dump writes


def check_setting(name: str, value: str | None) -> None:
    """Refuse settings that change how the dump's text reads: another encoding, backslash escapes in strings."""
    value = (value or "").strip().lower()
    if name.lower() == "client_encoding" and value not in ("utf8", "utf-8", "unicode"):
        raise MigrationError(f"encoding problem: the dump is in {value.upper()}; dump it with --encoding=UTF8")
    if name.lower() == "standard_conforming_strings" and value not in ("on", "true", "yes", "1", "t", "y"):
        raise MigrationError(
            "the dump sets standard_conforming_strings to off, so backslashes in its string literals would"
            " read differently: dump it again from a server with the setting on (the default)"
        )


def relations_changed(node: ast.Node) -> list[ast.RangeVar]:
    """The tables a statement of CHANGES_TABLE or ACTS_ON_ROWS acts on."""
    if isinstance(node, ast.TruncateStmt):
        return list(node.relations)
    if isinstance(node, ast.DropStmt):
        if node.removeType != enums.ObjectType.OBJECT_TABLE:
            return []
        names = [[part.sval for part in name] for name in node.objects]
        return [ast.RangeVar(schemaname=name[-2] if len(name) > 1 else None, relname=name[-1]) for name in names]
    if isinstance(node, ast.CreateTableAsStmt):
        return [node.into.rel]
    relation = getattr(node, "relation", None)
    return [relation] if isinstance(relation, ast.RangeVar) else []


class DumpReader:
    """Reads plain dump text (a file, or pg_restore's output) strictly: statements are parsed, never run.

    Only CREATE TABLE, COPY ... FROM stdin and INSERT for the restored tables are acted on. Every other
    statement is parsed and skipped, except one that would change a restored table's rows or columns
    (refused); settings that change how the text reads are refused; psql meta-commands other than
    pg_dump's own (\\restrict, \\unrestrict, \\connect) are refused, never run.
    """

    def __init__(self, stream: Iterable[bytes], name: str, loader: Loader) -> None:
        self.stream = iter(stream)
        self.name = name
        self.loader = loader
        self.lineno = 0
        self.read_ahead: list[str] = []  # lines read with a COPY statement that are its data, last first
        self.held: Statement | None = None  # the statement read after an INSERT run, handled next
        self.header = self.footer = self.reset_all = False
        self.saw_ddl = False
        self.ignored: list[str] = []  # public tables outside the contract

    def lines(self) -> Iterator[str]:
        while True:
            if self.read_ahead:
                yield self.read_ahead.pop()
                continue
            raw = next(self.stream, None)
            if raw is None:
                return
            self.lineno += 1
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise MigrationError(
                    f"encoding problem: line {self.lineno} of {self.name} is not UTF-8 ({error.reason})"
                ) from None
            raw = None  # a long line is held once, as text
            yield line

    def where(self) -> str:
        return f"line {self.lineno} of {self.name}"

    def statements(self, lines: Iterator[str]) -> Iterator[Statement]:
        """The dump's top-level statements, split by PostgreSQL's own scanner; a COPY's data lines are left in `lines`.

        The text so far is scanned when a line ends with a semicolon. While it ends inside a literal or a
        comment, the next scan waits until the text has doubled (a COPY FROM stdin line and a backslash line
        are scanned at once), so a long literal with many `;` lines costs linear time.
        """
        pending: list[str] = []
        size = scan_at = 0
        requeued = None  # a backslash line put back to be read after what the scan before it found
        for line in lines:
            stripped = line.strip()
            self.header = self.header or stripped.startswith("-- PostgreSQL database dump")
            self.footer = stripped == FOOTER or (
                self.footer and (not stripped or stripped.startswith(("--", "\\unrestrict")))
            )
            meta = stripped.startswith("\\")
            if meta and pending and line is not requeued:  # between statements (a meta-command), or inside one?
                requeued = line
                self.read_ahead.append(line)  # read again after the data of a COPY the scan may find
                rest = yield from self.split("".join(pending))
                if rest is not None:
                    pending, size, scan_at = [rest] if rest else [], len(rest), 0
                continue
            if not pending:
                if meta:
                    self.meta_command(stripped)
                    continue
                if not stripped or stripped.startswith("--"):
                    continue
            pending.append(line)
            size += len(line)
            if stripped.endswith(";") and (size >= scan_at or MAY_END_COPY.search(stripped)):
                rest = yield from self.split("".join(pending))
                if rest is not None:
                    pending, size = [rest] if rest else [], len(rest)
                scan_at = 2 * size
        if pending and (yield from self.split("".join(pending))) != "":
            raise MigrationError(f"truncated dump: {self.name} ends inside a statement (line {self.lineno})")

    def split(self, text: str) -> Iterator[Statement]:
        """Yield the complete statements of `text`; return what follows the last one, None if `text` ends in a literal.

        After a COPY FROM stdin, the lines that follow it are its data: they go back to `lines`.
        """
        try:  # the common case first: `text` is one whole statement, parsed once (no separate scan)
            (raw,) = parse_sql(text)
        except (ParseError, ValueError):
            raw = None
        if raw is not None and raw.stmt_len and not is_copy_from_stdin(raw.stmt):  # stmt_len 0: no `;` ends it
            yield Statement(raw.stmt, text[raw.stmt_location : raw.stmt_location + raw.stmt_len])
            return ""
        try:
            tokens = scan(text)
        except ParseError:
            return None  # an unterminated literal, quoted name or comment: the statement goes on
        first = 0
        for index, token in enumerate(tokens):
            if token.name != "ASCII_59":  # the semicolon
                continue
            if index > first:
                statement = self.parse(text[tokens[first].start : token.start])
                if is_copy_from_stdin(statement.node):
                    same_line, _, data = text[token.end + 1 :].partition("\n")
                    if same_line.strip():
                        raise MigrationError(f"{self.where()}: text after a COPY ... FROM stdin")
                    self.read_ahead.extend(reversed(data.splitlines(keepends=True)))
                    yield statement
                    return ""
                yield statement
            first = index + 1
        return text[tokens[first].start :] if first < len(tokens) else ""

    def parse(self, text: str) -> Statement:
        try:
            (raw,) = parse_sql(text)
        except ParseError as error:
            reason = " ".join(str(error.args[0])[:200].split())
            raise MigrationError(f"{self.where()}: PostgreSQL's grammar rejects {excerpt(text)} ({reason})") from None
        return Statement(raw.stmt, text)

    def meta_command(self, line: str) -> None:
        """A psql meta-command between statements: pg_dump's own are skipped (never run), any other refused."""
        command = line.split()[0]
        if command not in ("\\restrict", "\\unrestrict", "\\connect", "\\c"):
            what = "a \\. line outside COPY data" if command == "\\." else f"the psql meta-command {excerpt(line)}"
            raise MigrationError(f"{self.where()}: refusing {what}")

    def copy_data(self, lines: Iterator[str], label: str) -> Iterator[str]:
        for line in lines:
            if line.rstrip("\r\n") == "\\.":
                return
            yield line
        raise MigrationError(f"truncated dump: the COPY data of {label} in {self.name} ends before its \\. line")

    def read(self) -> None:
        lines = self.lines()
        statements = self.statements(lines)
        while (statement := self.held or next(statements, None)) is not None:
            self.held = None
            self.reset_all = False
            node = statement.node
            if isinstance(node, ast.VariableSetStmt):
                self.setting(node)
            elif isinstance(node, ast.SelectStmt):
                calls = SetConfigCalls()
                calls(node)
                for name, value in calls.calls:
                    check_setting(name, value)
                    if value is not None:  # set_config(name, NULL, ...) changes nothing
                        self.apply(name, value)
            elif isinstance(node, ast.CreateStmt):
                self.create(node)
            elif isinstance(node, ast.CopyStmt):
                self.copy(statement, lines)
            elif isinstance(node, ast.InsertStmt):
                self.insert(node, statements)
            else:
                self.check_harmless(statement)
        if self.header and not self.footer:
            raise MigrationError(f"truncated dump: {self.name} lacks pg_dump's closing 'dump complete' line")
        if not self.header and not self.reset_all:
            raise MigrationError(
                f"truncated dump: {self.name} has neither pg_dump's closing line nor the CLI's RESET ALL"
            )

    def setting(self, node: ast.VariableSetStmt) -> None:
        kinds = enums.VariableSetKind
        if node.kind == kinds.VAR_RESET_ALL:
            self.reset_all = True
            for name in VALUE_SETTINGS:
                self.apply(name, None)
        elif node.kind in (kinds.VAR_SET_DEFAULT, kinds.VAR_RESET):
            self.apply(node.name, None)
        elif node.kind == kinds.VAR_SET_VALUE and node.args:
            try:
                value = ", ".join(str(literal(value)) for value in node.args)
            except ValueError:
                if node.name.lower() in VALUE_SETTINGS:
                    raise MigrationError(f"{self.where()}: cannot read the value the dump gives {node.name}") from None
                return  # a computed value of a setting that does not change how values read
            check_setting(node.name, value)
            self.apply(node.name, value)

    def apply(self, name: str, value: str | None) -> None:
        """A setting that changes how values read (dates, intervals, time zones): set in the restore's transaction
        as the dump sets it, so its rows read as PostgreSQL reads them; None: back to the default."""
        if name.lower() not in VALUE_SETTINGS:
            return
        if value is None:
            self.loader.cur.execute(sql.SQL("set local {} to default").format(sql.Identifier(name.lower())))
        else:
            self.loader.cur.execute("select set_config(%s, %s, true)", (name, value))

    def create(self, node: ast.CreateStmt) -> None:
        self.saw_ddl = True
        table = self.loader.table(node.relation)
        if table is None:
            if node.relation.schemaname == "public":
                self.ignored.append(dotted(node.relation))
            return
        elements = node.tableElts or ()
        if (
            node.inhRelations
            or node.partbound
            or node.ofTypename
            or any(isinstance(element, ast.TableLikeClause) for element in elements)
        ):
            raise MigrationError(f"CREATE TABLE {table.label} takes columns from another table or type")
        columns = []
        for element in elements:
            if isinstance(element, ast.Constraint):
                self.key(table, element, [])
                continue
            constraints = element.constraints or ()
            if any(c.contype == enums.ConstrType.CONSTR_GENERATED for c in constraints):
                continue  # a generated column: pg_dump leaves it out of the data
            for constraint in constraints:
                self.key(table, constraint, [element.colname])
            plain = not (element.typeName.pct_type or element.typeName.setof)
            columns.append((element.colname, RawStream()(element.typeName) if plain else "unsupported"))
        self.loader.create(table, columns)

    def key(self, table: Table, constraint: ast.Constraint, columns: list[str]) -> None:
        if constraint.contype in (enums.ConstrType.CONSTR_PRIMARY, enums.ConstrType.CONSTR_UNIQUE):
            keys = [key.sval for key in constraint.keys] if constraint.keys else columns
            self.loader.keys.setdefault(table.target, []).append(keys)

    def copy(self, statement: Statement, lines: Iterator[str]) -> None:
        node = statement.node
        table = self.loader.table(node.relation) if node.relation is not None else None
        from_stdin = is_copy_from_stdin(node)
        if table is not None and not (from_stdin and not node.options and node.whereClause is None):
            raise MigrationError(f"refusing {excerpt(statement.text)}: only COPY ... FROM stdin data is read")
        if not from_stdin:
            return  # not data: nothing follows it, and it is never run
        data = self.copy_data(lines, dotted(node.relation) if node.relation else "a query")
        if table is not None:
            self.loader.copy(table, self.columns(table, node.attlist), data)
        for _ in data:  # the rest of the data of a table that is not restored
            pass

    def insert(self, node: ast.InsertStmt, statements: Iterator[Statement]) -> None:
        """Stream the rows of consecutive INSERTs into one table (CLI dumps write one per row) into one COPY."""
        table = self.loader.table(node.relation)
        if table is None:
            return
        if any(target.indirection for target in node.cols or ()):
            raise MigrationError(f"INSERT into {table.label} sets parts of columns")
        columns = self.columns(table, node.cols)

        def rows() -> Iterator[str]:
            current = node
            while True:
                yield from insert_rows(current, table, columns)
                following = next(statements, None)
                if following is None:
                    return
                if not (
                    isinstance(following.node, ast.InsertStmt)
                    and self.loader.table(following.node.relation) is table
                    and self.columns(table, following.node.cols) == columns
                ):
                    self.held = following
                    return
                current = following.node

        self.loader.copy(table, columns, rows())

    def columns(self, table: Table, listed: Iterable[ast.Node] | None) -> list[str]:
        """The columns a COPY or INSERT lists, else those of the table's CREATE TABLE."""
        columns = [getattr(item, "sval", None) or item.name for item in listed or ()] or self.loader.columns.get(
            table.target
        )
        if columns is None:
            raise MigrationError(f"data for {table.label} names no columns and the dump has no CREATE TABLE for it")
        return columns

    def check_harmless(self, statement: Statement) -> None:
        """Refuse a statement that would change a restored table's rows or columns when PostgreSQL runs it."""
        node = statement.node
        if not isinstance(node, CHANGES_TABLE + ACTS_ON_ROWS + (ast.CreateTableAsStmt,)):
            return
        for relation in relations_changed(node):
            table = self.loader.table(relation)
            if table is None:
                continue
            if isinstance(node, ast.AlterTableStmt) and all(cmd.subtype in HARMLESS_ALTERATIONS for cmd in node.cmds):
                for cmd in node.cmds:
                    if isinstance(cmd.def_, ast.Constraint):
                        self.key(table, cmd.def_, [])
            elif isinstance(node, ACTS_ON_ROWS):
                if table.target not in self.loader.dump_rows:
                    raise MigrationError(
                        f"{self.where()}: refusing {excerpt(statement.text)}, which would act on the rows of"
                        f" {table.label} as they load"
                    )
            elif table.target in self.loader.columns or isinstance(node, ast.CreateTableAsStmt):
                # a DROP or ALTER before the table's CREATE TABLE (pg_dump --clean) acts on nothing restored
                raise MigrationError(
                    f"{self.where()}: refusing {excerpt(statement.text)}, which changes {table.label}:"
                    " only its CREATE TABLE and data are read"
                )


def is_copy_from_stdin(node: ast.Node) -> bool:
    return isinstance(node, ast.CopyStmt) and node.is_from and not node.is_program and node.filename is None


class Watchdog:
    """Stops a child process that, while we wait for its output, neither reads its input nor writes for
    STALL_SECONDS: a pg_restore spinning on a damaged archive never holds the restore's transaction open."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.waiting = False
        self.stalled = False
        self.last = time.monotonic()
        threading.Thread(target=self.watch, daemon=True).start()

    def input_read(self) -> int:
        """Bytes the process has read so far (Linux), its progress through the archive."""
        try:
            return int(Path(f"/proc/{self.process.pid}/io").read_text().split("rchar: ")[1].split()[0])
        except (OSError, IndexError, ValueError):
            return 0

    def watch(self) -> None:
        read = self.input_read()
        while self.process.poll() is None:
            time.sleep(min(1.0, STALL_SECONDS / 4))
            now = self.input_read()
            if now != read or not self.waiting:
                read, self.last = now, time.monotonic()
            elif time.monotonic() - self.last > STALL_SECONDS:
                self.stalled = True
                self.process.kill()
                return

    def lines(self, output: IO[bytes]) -> Iterator[bytes]:
        while True:
            self.waiting = True
            line = output.readline()
            self.waiting, self.last = False, time.monotonic()
            if not line:
                return
            yield line


def run_pg_restore(path: Path, arguments: list[str], read: object = None) -> str:
    """Run the newest pg_restore on `path` under a watchdog; hand its output lines to `read`, or return them.

    A failure of pg_restore (or a stall) is raised as one line; otherwise `read`'s own error is.
    """
    program = lifeos_env.pg_client("pg_restore")
    with (
        tempfile.TemporaryFile() as errors,
        subprocess.Popen([program, *arguments, str(path)], stdout=subprocess.PIPE, stderr=errors) as process,
    ):
        watchdog = Watchdog(process)
        lines = watchdog.lines(process.stdout)
        failure = output = None
        try:
            if read is None:
                output = b"".join(lines).decode("utf-8", errors="replace")
            else:
                read(lines)
        except MigrationError as error:
            failure = error
            process.kill()
        process.wait()
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    if watchdog.stalled:
        raise MigrationError(
            f"pg_restore made no progress on {path} for {STALL_SECONDS:g} s and was stopped:"
            " the archive is truncated or damaged"
        )
    if process.returncode not in (0, -9):
        raise pg_restore_failure(path, stderr)
    if failure is not None:
        raise failure
    return output or ""


def pg_restore_failure(path: Path, stderr: str) -> MigrationError:
    if version := re.search(r"unsupported version \((\d+\.\d+)\)", stderr):
        return MigrationError(
            f"{path} is archive format {version.group(1)}, newer than the newest pg_restore here reads"
        )
    if "end of file" in stderr or "truncated" in stderr:
        return MigrationError(f"truncated dump: pg_restore cannot read {path} to its end")
    lines = [line for line in stderr.splitlines() if line.strip()]
    return MigrationError(f"pg_restore cannot read {path}: {lines[-1] if lines else 'no message'}")


def list_archive(path: Path) -> str:
    """The archive's table of contents (pg_restore -l): it is checked before any transaction opens."""
    return run_pg_restore(path, ["-l"])


def read_archive(path: Path, listing: str, loader: Loader) -> DumpReader:
    """A custom, tar or directory archive: pg_restore prints only the restored tables' entries, read strictly."""
    wanted, ignored = [], []
    for line in listing.splitlines():
        if entry := TOC_ENTRY.match(line):
            kind, schema, name = entry.groups()
            if (schema, name) in loader.tables:
                wanted.append(line)
            elif (kind, schema) == ("TABLE", "public"):
                ignored.append(f"public.{name}")
    readers = []
    with tempfile.NamedTemporaryFile("w", suffix=".list") as toc:
        toc.write("".join(f"{line}\n" for line in wanted))
        toc.flush()

        def read(lines: Iterator[bytes]) -> None:
            readers.append(DumpReader(lines, str(path), loader))
            readers[0].read()

        run_pg_restore(path, ["--no-owner", "--no-privileges", "-L", toc.name, "-f", "-"], read)
    readers[0].ignored = ignored
    return readers[0]


def inspect(path: Path) -> str | None:
    """Check a dump before any transaction opens: an archive's table of contents, or None for plain text."""
    if not path.exists():
        raise MigrationError(f"no dump at {path}")
    if path.is_dir():
        return list_archive(path)
    with path.open("rb") as file:
        head = file.read(512)
    if head.startswith(b"PGDMP") or head[257:262] == b"ustar":
        return list_archive(path)
    check_plain(path, head)
    return None


def read_file(path: Path, listing: str | None, loader: Loader) -> bool:
    """Read a dump file of any kind into the loader; True when it was data-only (no CREATE TABLE)."""
    if listing is not None:
        reader = read_archive(path, listing, loader)
    else:
        with path.open("rb") as file:
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
    """Copy the tables from a live v1 database: a read-only session, one repeatable-read snapshot."""
    source = lifeos_env.connect_read_only(dsn)
    try:
        source.set_session(isolation_level="REPEATABLE READ")
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


# Schemas a restore must never replace: live v2, the shadow, the ledger (dbt vars); v2_* holds the work
# schema, backups and rolled-back copies; PostgreSQL's own.
PROTECTED_VARS = ("v2_schema", "marts_schema", "meta_schema")


def check_schema(cur: psycopg2.extensions.cursor, schema: str, tables: Iterable[Table]) -> None:
    """Refuse to replace a schema that is the migration's or PostgreSQL's, or holds anything a restore does not."""
    protected = {lifeos_env.dbt_var(name) for name in PROTECTED_VARS}
    if schema in protected or schema.startswith(("v2_", "pg_")) or schema == "information_schema":
        raise MigrationError(f"refusing to restore into schema {schema}: it is not v1's; restore into v1")
    cur.execute(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = %s and not (c.relkind = 'r' and c.relname = any(%s))"
        " union all select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = %s order by 1 limit 3",
        (schema, [table.target for table in tables], schema),
    )
    others = [name for (name,) in cur.fetchall()]
    if others:
        raise MigrationError(
            f"refusing to restore into schema {schema}: it holds {', '.join(others)}, which no v1 restore made"
        )


def warn_emptied(cur: psycopg2.extensions.cursor, schema: str, counts: list[tuple[Table, int, int]]) -> list[str]:
    """A data-only dump without rows for a table that has rows in the v1 it replaces or in live v2: name each."""
    warnings = []
    for table, rows, _ in counts:
        if rows or table.schema != "public":
            continue
        for place in (schema, lifeos_env.dbt_var("v2_schema")):
            name = f"{place}.{table.target}"
            cur.execute("select to_regclass(%s) is not null", (sql.Identifier(place, table.target).as_string(cur),))
            if cur.fetchone()[0]:
                cur.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(place, table.target)))
                if held := cur.fetchone()[0]:
                    warnings.append(f"the data-only dump holds no rows for {table.label}, but {name} has {held}")
    return warnings


def restore(dump: Path | None = None, dsn: str | None = None, schema: str = V1_SCHEMA) -> dict[str, int]:
    """Restore v1 from a dump file or a live database into `schema`, atomically; return rows per table."""
    tables = contract()
    listing = inspect(Path(dump)) if dsn is None else None
    incoming = f"{schema[:40]}_restore_{uuid.uuid4().hex[:8]}"
    progress = RowsProgress()
    conn = lifeos_env.connect()
    try:
        progress.start()
        conn.set_client_encoding("UTF8")
        with conn, conn.cursor() as cur:
            check_schema(cur, schema, tables.values())
            cur.execute(sql.SQL("create schema {}").format(sql.Identifier(incoming)))
            loader = Loader(cur, incoming, tables, progress=progress.rows)
            if dsn is not None:
                read_live(dsn, loader)
                data_only = False
            else:
                data_only = read_file(Path(dump), listing, loader)
            counts = loader.finish(data_only)
            if data_only:
                loader.warnings += warn_emptied(cur, schema, counts)
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
        progress.stop()
        conn.close()
    report(schema, counts, loader.warnings, dump or "the live database")
    return {table.target: loaded for table, _, loaded in counts}


class RowsProgress(Progress):
    """The restore's progress bar: rows copied in so far, and the table being copied."""

    def __init__(self) -> None:
        rows = TextColumn("{task.completed:,.0f} rows")
        super().__init__(TextColumn("{task.description}"), BarColumn(), rows, TimeElapsedColumn(), console=console)
        self.bar = self.add_task("restore", total=None)
        self.copied: dict[str, int] = {}  # table -> rows copied in

    def rows(self, table: Table, copied: int) -> None:
        self.copied[table.label] = copied
        self.update(self.bar, completed=sum(self.copied.values()), description=f"restore {table.label}")


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
    parser.add_argument(
        "--schema", default=V1_SCHEMA, help=f"the schema to restore into (dbt var v1_schema, default {V1_SCHEMA})"
    )
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
