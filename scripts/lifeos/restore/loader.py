"""Creates the restored tables in a fresh schema and streams the dump's rows into them with COPY FROM STDIN."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import psycopg2
import psycopg2.extensions
from pglast import ast
from psycopg2 import sql

from lifeos.restore.contract import SOURCES_YML, MigrationError, Table


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


@dataclass
class Loader:
    """Creates the restored tables in a fresh schema and streams their rows in with COPY FROM STDIN.

    A data section is a table's own, or one of a partition or inheritance child of it (`source`): those rows
    go through a scratch table into the restored table's columns, as they read when PostgreSQL selects it.
    """

    cur: psycopg2.extensions.cursor
    schema: str
    tables: dict[tuple[str, str], Table]
    types: dict[str, dict[str, str]] = field(default_factory=dict)  # target -> created column -> type
    keys: dict[str, list[list[str]]] = field(default_factory=dict)  # target -> the dump's unique keys
    sections: set[str] = field(default_factory=set)  # the tables whose data sections were read
    dump_rows: dict[str, int] = field(default_factory=dict)  # target -> rows read from its data sections
    loaded_rows: dict[str, int] = field(default_factory=dict)  # target -> rows the server reported loaded
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
        """`declared` when it names a built-in type (of pg_catalog) the server knows, else text (with a warning);
        a declared type that cannot become the type the models expect is refused here, not in dbt."""
        self.cur.execute(
            "select exists (select from pg_type where oid = to_regtype(%s)"
            " and typnamespace = 'pg_catalog'::regnamespace)",
            (declared,),
        )
        if not self.cur.fetchone()[0]:
            self.warnings.append(f"{table.label}.{column} has type {declared!r}, restored as text")
            return "text"
        expected = table.expected.get(column)
        if expected is not None:
            try:
                self.cur.execute(sql.SQL("select cast(null::{} as {})").format(sql.SQL(declared), sql.SQL(expected)))
            except psycopg2.Error:
                raise MigrationError(
                    f"{table.label}.{column} is {declared} in the dump, which PostgreSQL cannot cast to {expected},"
                    f" the type {SOURCES_YML.name} expects"
                ) from None
        return declared

    def create(self, table: Table, columns: list[tuple[str, str]]) -> None:
        if table.target in self.types:
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
        types = {name: self.column_type(table, name, declared) for name, declared in columns}
        self.cur.execute(
            sql.SQL("create table {} ({})").format(
                sql.Identifier(self.schema, table.target),
                sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in types.items()),
            )
        )
        self.types[table.target] = types

    def create_from_contract(self, table: Table, data_columns: Iterable[str] = ()) -> None:
        """For dumps without DDL (data-only): the data's columns and the expected ones, typed as far as known."""
        names = list(data_columns) + [c for c in table.expected if c not in data_columns]
        self.create(table, [(c, table.known.get(c, "text")) for c in names])

    def load(
        self,
        table: Table,
        source: str,
        columns: list[str],
        lines: Iterable[str],
        defaults: dict[str, str],
        more: bool = False,
    ) -> None:
        """Stream one data section of `source` (the table itself, or a partition or child of it: `more` then),
        COPY text rows, into `table`; `defaults`: SQL for the table's columns the section leaves out."""
        if source in self.sections and not more:
            raise MigrationError(f"the dump holds two data sections for {source}")
        self.sections.add(source)
        if table.target not in self.types:
            self.create_from_contract(table, columns)
        types = self.types[table.target]
        target = sql.Identifier(self.schema, table.target)
        own = source == table.label
        unknown = [c for c in columns if c not in types]
        if own and unknown:
            raise MigrationError(f"data for {table.label} names column(s) its CREATE TABLE lacks: {', '.join(unknown)}")
        for column, default in defaults.items():
            self.cur.execute(
                sql.SQL("alter table {} alter column {} set default {}").format(
                    target, sql.Identifier(column), sql.SQL(default)
                )
            )
        into = target if own else sql.Identifier(self.schema, "_section")
        if not own:  # a partition's or child's rows, its own columns left out as PostgreSQL shows the parent
            self.cur.execute(
                sql.SQL("create table {} ({})").format(
                    into,
                    sql.SQL(", ").join(
                        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(types.get(c, "text"))) for c in columns
                    ),
                )
            )
        stream = CopyStream(iter(lines), lambda rows: self.progress(table, rows))
        self.cur.copy_expert(
            sql.SQL("copy {} ({}) from stdin")
            .format(into, sql.SQL(", ").join(map(sql.Identifier, columns)))
            .as_string(self.cur),
            stream,
        )
        if stream.error is not None:
            raise stream.error
        loaded = self.cur.rowcount  # the server's count
        if not own:
            shared = sql.SQL(", ").join(sql.Identifier(c) for c in columns if c in types)
            self.cur.execute(sql.SQL("insert into {} ({c}) select {c} from {}").format(target, into, c=shared))
            loaded = self.cur.rowcount
            self.cur.execute(sql.SQL("drop table {}").format(into))
            if unknown:
                self.warnings.append(
                    f"{source}'s rows are restored into {table.target}, without its own column(s) {', '.join(unknown)}"
                )
        self.dump_rows[table.target] = self.dump_rows.get(table.target, 0) + stream.rows
        self.loaded_rows[table.target] = self.loaded_rows.get(table.target, 0) + loaded
        for column in defaults:
            self.cur.execute(
                sql.SQL("alter table {} alter column {} drop default").format(target, sql.Identifier(column))
            )

    def check(self, source: str, count: int | None, lines: Iterator[str], where: str) -> None:
        """Read the COPY data of a table the restore skips as the server reads any: `count` columns of text
        (the first row's count when unknown). Rows that do not fit mean the section does not end where it should."""
        first = next(lines, None)
        if first is None:
            return
        count = count or first.count("\t") + 1
        scratch = sql.Identifier(self.schema, "_skipped")
        self.cur.execute(
            sql.SQL("create table {} ({})").format(
                scratch, sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(f"c{n}")) for n in range(count))
            )
        )
        stream = CopyStream(itertools.chain([first], lines), lambda rows: None)
        try:
            self.cur.copy_expert(sql.SQL("copy {} from stdin").format(scratch).as_string(self.cur), stream)
        except psycopg2.Error as error:
            raise MigrationError(
                f"{where}: the COPY data of {source} does not read as its {count} column(s)"
                f" ({server_refusal(error)}): is a \\. line missing?"
            ) from None
        if stream.error is not None:
            raise stream.error
        self.cur.execute(sql.SQL("drop table {}").format(scratch))

    def finish(self, data_only: bool, hint: str = "") -> list[tuple[Table, int, int]]:
        """Create what the dump lacks (or fail), check every count and key; return (table, dump, loaded)."""
        if not any(t.schema == "public" and t.target in self.dump_rows for t in self.tables.values()):
            raise MigrationError("the dump holds no data for any of the v1 tables: it is no v1 data dump" + hint)
        for table in self.tables.values():
            if table.target not in self.types:
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
        if not any(rows for _, rows, _ in counts):
            self.warnings.append("the dump holds no rows at all: every v1 table is restored empty")
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


def server_refusal(error: psycopg2.Error) -> str:
    """The server's message for an error, on one line, with the first line of its context (which row of a COPY)."""
    message = (error.diag.message_primary or str(error)).strip().splitlines()[0]
    context = (error.diag.context or "").strip().splitlines()
    return message + (f" ({context[0]})" if context else "")
