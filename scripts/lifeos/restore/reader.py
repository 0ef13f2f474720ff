"""Reads plain dump text strictly: each statement is parsed by PostgreSQL's grammar (pglast), never run."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import psycopg2
from pglast import ast, enums, parse_sql
from pglast.parser import ParseError
from pglast.stream import RawStream

from lifeos.restore import rules
from lifeos.restore.contract import MigrationError, Table, dotted, excerpt
from lifeos.restore.loader import Loader, server_refusal
from lifeos.restore.scanner import Piece, Scanner

FOOTER = "-- PostgreSQL database dump complete"
# pg_dump's heading of a table's data section: with --inserts, an empty table's section is this comment alone.
DATA_HEADING = re.compile(r"-- Data for Name: (.+); Type: TABLE DATA; Schema: ([^;]+);")
CONNECT_DATABASE = re.compile(r"dbname='((?:[^']|\\')*)'|^(?!-)(\S+)")
PG_DUMP_META = ("\\restrict", "\\unrestrict", "\\connect", "\\c")


class DumpReader:
    """Acts on CREATE TABLE, COPY ... FROM stdin and INSERT of the restored tables, their partitions and
    inheritance children; every other statement is parsed and skipped, unless it would change a restored table's
    rows or columns, change how the dump reads (a SET pg_dump never writes, a DO block) or run psql meta-commands
    other than pg_dump's own: those are refused, naming the statement and its line."""

    def __init__(self, stream: Iterable[bytes], name: str, loader: Loader) -> None:
        self.scanner = Scanner(stream, name)
        self.name = name
        self.loader = loader
        self.line = 0  # where the statement being handled starts
        self.held: tuple[Piece, ast.Node] | None = None  # the statement read after an INSERT run, handled next
        self.header = self.footer = self.reset_all = False
        self.saw_ddl = self.saw_copy = False
        self.shapes: dict[str, list[str]] = {}  # every table created -> its columns, in order
        self.generated: dict[str, list[str]] = {}  # every table created -> its generated columns (in no data)
        self.parents: dict[str, list[str]] = {}  # a partition or inheritance child -> its parents
        self.partitioned: set[str] = set()  # tables created PARTITION BY: their partitions hold the rows
        self.headings: set[str] = set()  # tables with pg_dump's data heading
        self.defaults: dict[str, dict[str, ast.Node | None]] = {}  # target -> column -> its default
        self.not_null: dict[str, set[str]] = {}  # target -> NOT NULL columns
        self.database = ""  # the database a pg_dumpall file is in (its last \connect)
        self.created_in: dict[str, str] = {}  # restored table -> the database its CREATE TABLE is in
        self.elsewhere: dict[str, set[str]] = {}  # schema -> v1 table names created or copied there, not in public

    def where(self) -> str:
        return self.scanner.where(self.line)

    def statements(self) -> Iterator[tuple[Piece, ast.Node]]:
        for piece in self.scanner.pieces():
            self.line = piece.line
            stripped = piece.text
            self.footer = stripped == FOOTER or (self.footer and stripped.startswith(("--", "\\unrestrict")))
            if piece.kind == "comment":
                self.header = self.header or stripped.startswith("-- PostgreSQL database dump")
                if heading := DATA_HEADING.match(stripped):
                    self.headings.add(f"{heading.group(2)}.{heading.group(1)}")
            elif piece.kind == "meta":
                self.meta_command(stripped)
            else:
                yield piece, self.parse(piece.text)

    def parse(self, text: str) -> ast.Node:
        try:
            (raw,) = parse_sql(text)
        except ParseError as error:
            reason = " ".join(str(error.args[0])[:200].split())
            raise MigrationError(f"{self.where()}: PostgreSQL's grammar rejects {excerpt(text)} ({reason})") from None
        return raw.stmt

    def meta_command(self, line: str) -> None:
        """A psql meta-command between statements: pg_dump's own are skipped (never run), any other refused."""
        command, _, arguments = line.partition(" ")
        if command not in PG_DUMP_META:
            what = "a \\. line outside COPY data" if command == "\\." else f"the psql meta-command {excerpt(line)}"
            raise MigrationError(f"{self.where()}: refusing {what}")
        if command in ("\\connect", "\\c"):
            found = CONNECT_DATABASE.search(arguments.strip())
            self.database = next(filter(None, found.groups()), "").strip('"') if found else ""

    def read(self) -> None:
        statements = self.statements()
        while (current := self.held or next(statements, None)) is not None:
            self.held = None
            self.reset_all = False
            piece, node = current
            self.line = piece.line
            try:
                self.handle(piece, node, statements)
            except MigrationError as error:
                if str(error).startswith(("line ", "truncated dump", "encoding problem")):
                    raise
                raise MigrationError(f"{self.where()}: {error}") from None
            except psycopg2.Error as error:
                refusal = server_refusal(error)
                raise MigrationError(f"{self.where()}: the server refused the restore: {refusal}") from None
        if self.header and not self.footer:
            raise MigrationError(f"truncated dump: {self.name} lacks pg_dump's closing 'dump complete' line")
        if not self.header and not self.reset_all:
            raise MigrationError(
                f"truncated dump: {self.name} has neither pg_dump's closing line nor the CLI's RESET ALL"
            )

    def handle(self, piece: Piece, node: ast.Node, statements: Iterator[tuple[Piece, ast.Node]]) -> None:
        if isinstance(node, ast.VariableSetStmt):
            self.setting(node, piece)
        elif isinstance(node, ast.SelectStmt):
            calls = rules.SetConfigCalls()
            calls(node)
            for name, value in calls.calls:
                self.check_setting(name, value, piece)
                if value is not None:  # set_config(name, NULL, ...) changes nothing
                    self.apply(name, value)
        elif isinstance(node, ast.DoStmt):
            raise MigrationError(f"refusing {excerpt(piece.text)}: pg_dump never writes code that runs as it loads")
        elif isinstance(node, ast.AlterDatabaseSetStmt | ast.AlterRoleSetStmt | ast.AlterSystemStmt):
            try:
                rules.check_stored_setting(node)
            except MigrationError as error:
                raise MigrationError(f"refusing {excerpt(piece.text)}: {error}") from None
        elif isinstance(node, ast.UpdateStmt) and rules.changes_settings(node):
            raise MigrationError(f"refusing {excerpt(piece.text)}: it changes settings as set_config does")
        elif isinstance(node, ast.CreateStmt):
            self.create(node)
        elif isinstance(node, ast.CopyStmt):
            self.copy(piece, node)
        elif isinstance(node, ast.InsertStmt):
            self.insert(node, statements)
        else:
            self.check_harmless(piece, node)

    def check_setting(self, name: str, value: str | None, piece: Piece) -> None:
        try:
            rules.check_setting(name, value)
        except MigrationError as error:
            if str(error).startswith(("encoding problem", "the dump sets")):
                raise
            raise MigrationError(f"refusing {excerpt(piece.text)}: {error}") from None

    def setting(self, node: ast.VariableSetStmt, piece: Piece) -> None:
        kinds = enums.VariableSetKind
        if node.kind == kinds.VAR_RESET_ALL:
            self.reset_all = True
            for name in rules.VALUE_SETTINGS:
                self.apply(name, None)
        elif node.kind in (kinds.VAR_SET_DEFAULT, kinds.VAR_RESET):
            self.apply(node.name, None)
        elif node.kind == kinds.VAR_SET_VALUE and node.args:
            try:
                value = ", ".join(str(rules.literal(value)) for value in node.args)
            except ValueError:
                self.check_setting(node.name, None, piece)
                if node.name.lower() in rules.VALUE_SETTINGS:
                    raise MigrationError(f"cannot read the value the dump gives {node.name}") from None
                return  # a computed value of a setting that does not change how values read
            self.check_setting(node.name, value, piece)
            self.apply(node.name, value)
        else:
            self.check_setting(node.name or "a transaction's characteristics", None, piece)

    def apply(self, name: str, value: str | None) -> None:
        """A setting that changes how values read (dates, intervals, time zones): set in the restore's transaction
        as the dump sets it, so its rows read as PostgreSQL reads them; None: back to the default."""
        if name.lower() not in rules.VALUE_SETTINGS:
            return
        cur = self.loader.cur
        if value is None:
            cur.execute(f"set local {name.lower()} to default")  # one of VALUE_SETTINGS
        else:
            cur.execute("select set_config(%s, %s, true)", (name, value))

    def restored(self, relation: ast.RangeVar) -> Table | None:
        """The restored table whose rows a table of the dump holds: itself, or the one table it is a partition or
        inheritance child of (at any depth); a child of two restored tables is refused."""
        table = self.loader.table(relation)
        if table is not None:
            return table
        roots, seen, todo = {}, set(), list(self.parents.get(dotted(relation), []))
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                schema, _, relname = name.rpartition(".")
                if (root := self.loader.tables.get((schema, relname))) is not None:
                    roots[root.label] = root
                todo += self.parents.get(name, [])
        if len(roots) > 1:
            raise MigrationError(
                f"{dotted(relation)} is a child of {' and '.join(sorted(roots))}: its rows would be in both"
            )
        return next(iter(roots.values()), None)

    def create(self, node: ast.CreateStmt) -> None:
        self.saw_ddl = True
        name = dotted(node.relation)
        table = self.loader.table(node.relation)
        elements = node.tableElts or ()
        definitions = [e for e in elements if isinstance(e, ast.ColumnDef)]
        own = [e for e in definitions if not generated(e)]
        self.generated[name] = [e.colname for e in definitions if generated(e)]
        parents = [dotted(parent) for parent in node.inhRelations or ()]
        inherited = [] if node.partbound is None else self.shapes.get(parents[0], [])
        for parent in parents if node.partbound is None else ():
            inherited += [c for c in self.shapes.get(parent, []) if c not in inherited]
        self.shapes[name] = inherited + [e.colname for e in definitions if e.colname not in inherited]
        if parents:
            self.parents[name] = parents
        if node.partspec is not None:  # its partitions hold its rows: it has no data section of its own
            self.partitioned.add(name)
        self.note_elsewhere(node.relation)
        if table is None:
            return
        if self.database and self.created_in.setdefault(table.target, self.database) != self.database:
            raise MigrationError(
                f"the file holds several databases ({self.created_in[table.target]}, {self.database}) with"
                f" {table.label}: restore one, dumped with `pg_dump DATABASE` (pg_dumpall writes them all)"
            )
        if parents or node.ofTypename or any(isinstance(e, ast.TableLikeClause) for e in elements):
            raise MigrationError(f"CREATE TABLE {table.label} takes columns from another table or type")
        defaults, not_null = self.defaults.setdefault(table.target, {}), self.not_null.setdefault(table.target, set())
        for element in elements:
            if isinstance(element, ast.Constraint):
                self.key(table, element, [])
                continue
            for constraint in element.constraints or ():
                self.key(table, constraint, [element.colname])
                if constraint.contype == enums.ConstrType.CONSTR_DEFAULT:
                    defaults[element.colname] = constraint.raw_expr
                if constraint.contype in (enums.ConstrType.CONSTR_NOTNULL, enums.ConstrType.CONSTR_PRIMARY):
                    not_null.add(element.colname)
        columns = []
        for element in own:
            plain = not (element.typeName.pct_type or element.typeName.setof)
            columns.append((element.colname, RawStream()(element.typeName) if plain else "unsupported"))
        self.loader.create(table, columns)

    def note_elsewhere(self, relation: ast.RangeVar) -> None:
        if relation.schemaname not in (None, "public") and ("public", relation.relname) in self.loader.tables:
            self.elsewhere.setdefault(relation.schemaname, set()).add(relation.relname)

    def key(self, table: Table, constraint: ast.Constraint, columns: list[str]) -> None:
        if constraint.contype in (enums.ConstrType.CONSTR_PRIMARY, enums.ConstrType.CONSTR_UNIQUE):
            keys = [key.sval for key in constraint.keys] if constraint.keys else columns
            self.loader.keys.setdefault(table.target, []).append(keys)
            self.not_null.setdefault(table.target, set()).update(keys if constraint.keys is None else ())

    def copy(self, piece: Piece, node: ast.CopyStmt) -> None:
        table = self.restored(node.relation) if node.relation is not None else None
        from_stdin = rules.is_copy_from_stdin(node)
        if table is not None and not (from_stdin and rules.text_format(node) and node.whereClause is None):
            raise MigrationError(f"refusing {excerpt(piece.text)}: only COPY ... FROM stdin data is read")
        if not from_stdin:
            return  # not data: nothing follows it, and it is never run
        if not rules.text_format(node):  # the data of a skipped table is read as text, as pg_dump writes it
            raise MigrationError(f"refusing {excerpt(piece.text)}: only COPY's text format, as pg_dump writes, is read")
        self.saw_copy = True
        source = dotted(node.relation) if node.relation else "a query"
        data = self.scanner.copy_data(source)
        if node.relation is not None:
            self.note_elsewhere(node.relation)
        if table is None:
            listed = [item.sval for item in node.attlist or ()] or self.data_columns(source)
            self.loader.check(source, len(listed) if listed else None, data, self.where())
            self.loader.sections.add(source)
            return
        self.load(table, source, self.columns(table, source, node.attlist), data)

    def load(self, table: Table, source: str, columns: list[str], rows: Iterator[str]) -> None:
        """One data section of `table` or of a partition or child of it, filling the columns it leaves out with
        their defaults as PostgreSQL does."""
        if table.target not in self.loader.types:  # a data-only dump: no DDL, no defaults
            self.loader.load(table, source, columns, rows, {})
            return
        fill = {}
        for column in self.loader.types[table.target]:
            if column in columns:
                continue
            default = self.defaults.get(table.target, {}).get(column)
            if default is None and column in self.not_null.get(table.target, set()):
                raise MigrationError(f"the data of {source} leaves out column {column}, which is NOT NULL")
            fill[column] = rules.default_expression(table, column, default)
        more = source != table.label or table.label in self.partitioned
        self.loader.load(table, source, columns, rows, fill, more)

    def insert(self, node: ast.InsertStmt, statements: Iterator[tuple[Piece, ast.Node]]) -> None:
        """Stream the rows of consecutive INSERTs into one table (CLI dumps write one per row) into one COPY."""
        table = self.restored(node.relation)
        self.note_elsewhere(node.relation)
        source = dotted(node.relation)
        if table is None:
            self.loader.sections.add(source)  # the data of a table outside the contract: parsed, not restored
            return
        if any(target.indirection for target in node.cols or ()):
            raise MigrationError(f"INSERT into {source} sets parts of columns")
        columns = self.columns(table, source, node.cols)
        width, skipped = len(columns), set()
        if not node.cols and self.generated.get(source):  # pg_dump --inserts: DEFAULT for each generated column
            shape = self.shapes[source]
            width, skipped = len(shape), {n for n, c in enumerate(shape) if c in self.generated[source]}

        def rows() -> Iterator[str]:
            current = node
            while True:
                yield from rules.insert_rows(current, source, width, skipped)
                following = next(statements, None)
                if following is None:
                    return
                piece, statement = following
                if not (
                    isinstance(statement, ast.InsertStmt)
                    and dotted(statement.relation) == source
                    and self.columns(table, source, statement.cols) == columns
                ):
                    self.held = following
                    return
                self.line = piece.line
                current = statement

        self.load(table, source, columns, rows())

    def columns(self, table: Table, source: str, listed: Iterable[ast.Node] | None) -> list[str]:
        """The columns a COPY or INSERT lists, else those of the CREATE TABLE of `source`."""
        names = [getattr(item, "sval", None) or item.name for item in listed or ()]
        created = list(self.loader.types.get(table.target, ())) if source == table.label else self.data_columns(source)
        columns = names or created
        if not columns:
            raise MigrationError(f"data for {source} names no columns and the dump has no CREATE TABLE for it")
        return columns

    def data_columns(self, name: str) -> list[str]:
        """The columns of a table's data: all but the generated ones."""
        return [c for c in self.shapes.get(name, []) if c not in self.generated.get(name, [])]

    def check_harmless(self, piece: Piece, node: ast.Node) -> None:
        """Refuse a statement that would change a restored table's rows or columns when PostgreSQL runs it;
        note the partitions, children and column defaults an ALTER TABLE adds."""
        if isinstance(node, ast.AlterTableStmt):
            self.alter(node)
        if not isinstance(node, rules.CHANGES_TABLE + rules.ACTS_ON_ROWS):
            return
        for relation in rules.relations_changed(node):
            table = self.restored(relation)
            if table is None:
                continue
            if isinstance(node, ast.AlterTableStmt) and all(
                cmd.subtype in rules.HARMLESS_ALTERATIONS | LINKS for cmd in node.cmds
            ):
                continue
            if isinstance(node, rules.ACTS_ON_ROWS):
                if table.target not in self.loader.dump_rows:
                    raise MigrationError(
                        f"refusing {excerpt(piece.text)}, which would act on the rows of {table.label} as they load"
                    )
            elif table.target in self.loader.types or isinstance(node, ast.CreateTableAsStmt):
                # a DROP or ALTER before the table's CREATE TABLE (pg_dump --clean) acts on nothing restored
                raise MigrationError(
                    f"refusing {excerpt(piece.text)}, which changes {table.label}: only its CREATE TABLE and data are"
                    " read"
                )

    def alter(self, node: ast.AlterTableStmt) -> None:
        """Partitions attached, inheritance added, defaults and keys of a restored table."""
        name = dotted(node.relation)
        for cmd in node.cmds:
            if cmd.subtype == enums.AlterTableType.AT_AttachPartition:
                self.link(dotted(cmd.def_.name), name)
            elif cmd.subtype == enums.AlterTableType.AT_AddInherit:
                self.link(name, dotted(cmd.def_))
            elif (table := self.loader.table(node.relation)) is not None:
                if cmd.subtype == enums.AlterTableType.AT_ColumnDefault:
                    self.defaults.setdefault(table.target, {})[cmd.name] = cmd.def_
                elif isinstance(cmd.def_, ast.Constraint) and cmd.subtype in rules.HARMLESS_ALTERATIONS:
                    self.key(table, cmd.def_, [])

    def link(self, child: str, parent: str) -> None:
        self.parents.setdefault(child, []).append(parent)
        table = self.restored(relation(child))
        if table is not None and child in self.loader.sections:
            raise MigrationError(f"{child} becomes part of {table.label} after its rows were read")

    def ignored(self) -> list[str]:
        """Public tables of the dump (created, or with data in a data-only dump) outside the v1 contract that hold
        none of its rows."""
        names = dict.fromkeys([*self.shapes, *sorted(self.loader.sections)])
        return [name for name in names if name.startswith("public.") and self.restored(relation(name)) is None]

    def hint(self) -> str:
        """Why a dump may hold no v1 data: the app's tables under another schema."""
        return "".join(
            f"; it has {', '.join(sorted(names))} in schema {schema}, but v1's tables are read from schema public"
            for schema, names in sorted(self.elsewhere.items())
        )

    def check_sections(self) -> None:
        """pg_dump writes a data section for every table it creates (for an empty table in an INSERT dump, its
        heading alone): a restored table, partition or child without one lost its rows."""
        for name in self.shapes:
            table = self.restored(relation(name))
            if table is None or name in self.partitioned or name in self.loader.sections:
                continue
            if name in self.headings and table.label in self.partitioned:
                continue  # pg_dump --load-via-partition-root: the partition's rows are in its root's sections
            if self.saw_copy or name not in self.headings:
                raise MigrationError(
                    f"the dump creates {name} but holds no data section for it (pg_dump writes one for every table,"
                    " empty or not): its rows are missing"
                )


LINKS = {enums.AlterTableType.AT_AttachPartition, enums.AlterTableType.AT_AddInherit}


def generated(column: ast.ColumnDef) -> bool:
    """A generated column: pg_dump leaves it out of the data."""
    return any(c.contype == enums.ConstrType.CONSTR_GENERATED for c in column.constraints or ())


def relation(name: str) -> ast.RangeVar:
    schema, _, relname = name.rpartition(".")
    return ast.RangeVar(schemaname=schema or None, relname=relname)
