"""What the restore accepts of a dump's statements, read through PostgreSQL's own grammar (pglast)."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast, enums
from pglast.stream import RawStream
from pglast.visitors import Visitor

from lifeos.copy_format import copy_text
from lifeos.restore.contract import MigrationError, Table, excerpt

# The settings pg_dump, pg_dumpall and the Supabase CLI write; any other SET is refused. DateStyle,
# IntervalStyle and TimeZone change how values read: they are applied to the rows after them.
DUMP_SETTINGS = {
    "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout", "transaction_timeout",
    "client_encoding", "standard_conforming_strings", "search_path", "check_function_bodies", "xmloption",
    "client_min_messages", "row_security", "default_tablespace", "default_table_access_method",
    "default_with_oids", "session_replication_role", "session_authorization", "role",
    "default_transaction_read_only", "datestyle", "intervalstyle", "timezone",
}  # fmt: skip
VALUE_SETTINGS = ("datestyle", "intervalstyle", "timezone")
# Settings that change how a value's text reads: stored for a database or role (ALTER DATABASE/ROLE ... SET, which
# psql's session takes at its next \connect), they are refused.
READ_SETTINGS = {*VALUE_SETTINGS, "standard_conforming_strings", "array_nulls", "backslash_quote", "client_encoding",
                 "xmloption", "lc_monetary"}  # fmt: skip
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
                 ast.AlterObjectSchemaStmt, ast.DropStmt, ast.AlterTableStmt, ast.CreateTableAsStmt)  # fmt: skip
# Statements that act on later rows (triggers, rules): refused on a restored table before its data.
ACTS_ON_ROWS = (ast.CreateTrigStmt, ast.RuleStmt)
# Functions a column default may call to be filled in for a column a data section leaves out.
DEFAULT_FUNCTIONS = {"now", "gen_random_uuid", "transaction_timestamp", "statement_timestamp", "clock_timestamp",
                     "timezone"}  # fmt: skip


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


def copy_line(values: list[str | None]) -> str:
    return "\t".join(map(copy_text, values)) + "\n"


def insert_rows(statement: ast.InsertStmt, label: str, width: int, generated: set[int]) -> Iterator[str]:
    """The VALUES lists of an INSERT of `width` columns as COPY text lines, without the `generated` positions
    (pg_dump --inserts writes DEFAULT there). Only constants are accepted, nothing that could run."""
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
            if len(row) != width:
                raise MigrationError(f"an INSERT into {label} has a row of {len(row)} values for {width} columns")
            if any(not isinstance(row[n], ast.SetToDefault) for n in generated):
                raise ValueError
            yield copy_line([literal(value) for n, value in enumerate(row) if n not in generated])
    except ValueError:
        raise MigrationError(
            f"INSERT into {label} holds something other than literal values: {excerpt(RawStream()(statement))}"
        ) from None


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
                self.calls.append(("an expression", None))  # a setting named by an expression: nothing pg_dump writes


def check_setting(name: str, value: str | None) -> None:
    """Refuse a setting pg_dump does not write, another encoding, or backslash escapes in strings."""
    setting = name.lower()
    value = (value or "").strip().lower()
    if setting not in DUMP_SETTINGS:
        raise MigrationError(f"it sets {name}, which pg_dump never sets and which may change how the dump reads")
    if setting == "client_encoding" and value not in ("utf8", "utf-8", "unicode"):
        raise MigrationError(f"encoding problem: the dump is in {value.upper()}; dump it with --encoding=UTF8")
    if setting == "standard_conforming_strings" and value not in ("on", "true", "yes", "1", "t", "y"):
        raise MigrationError(
            "the dump sets standard_conforming_strings to off, so backslashes in its string literals would"
            " read differently: dump it again from a server with the setting on (the default)"
        )


def check_stored_setting(node: ast.AlterDatabaseSetStmt | ast.AlterRoleSetStmt | ast.AlterSystemStmt) -> None:
    """A setting stored for the server, a database or a role that would change how the dump's values read."""
    name = (node.setstmt.name or "").lower()
    if isinstance(node, ast.AlterSystemStmt) or name in READ_SETTINGS:
        raise MigrationError(f"it stores {name or 'settings'} for later sessions, which may change how the dump reads")


def changes_settings(node: ast.UpdateStmt) -> bool:
    """An UPDATE of pg_settings: set_config by another name."""
    return node.relation.relname == "pg_settings" and node.relation.schemaname in (None, "pg_catalog")


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


def is_copy_from_stdin(node: ast.Node) -> bool:
    return isinstance(node, ast.CopyStmt) and node.is_from and not node.is_program and node.filename is None


def text_format(node: ast.CopyStmt) -> bool:
    """COPY's text format with its defaults, as pg_dump writes it: no option but FORMAT text."""
    return all(
        option.defname == "format" and getattr(option.arg, "sval", "") == "text" for option in node.options or ()
    )


def default_expression(table: Table, column: str, node: ast.Node | None) -> str:
    """A column default as SQL the restore may run to fill the column in: constants, casts of them to built-in
    types and DEFAULT_FUNCTIONS only; `null` without a default. Anything else is refused, naming it."""

    def safe(expression: ast.Node) -> bool:
        if isinstance(expression, ast.A_Const | ast.SQLValueFunction):
            return True
        if isinstance(expression, ast.TypeCast):
            names = [part.sval for part in expression.typeName.names]
            return (names[0] == "pg_catalog" or len(names) == 1) and safe(expression.arg)
        if isinstance(expression, ast.FuncCall):
            names = [part.sval for part in expression.funcname]
            return (
                names[-1] in DEFAULT_FUNCTIONS
                and names[:-1] in ([], ["pg_catalog"])
                and all(safe(arg) for arg in expression.args or ())
            )
        return False

    if node is None:
        return "null"
    if not safe(node):
        raise MigrationError(
            f"the data of {table.label} leaves out column {column}, whose default {excerpt(RawStream()(node))}"
            " the restore does not compute"
        )
    return RawStream()(node)
