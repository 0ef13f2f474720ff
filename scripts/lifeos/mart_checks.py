"""A mart's validation rules, as its one data test mart_checks holds them (tests/generic/mart_checks.sql), and
each rule's outcome. dbt reports one status for the node; the failing rows it stores (store_failures) each name
their rule, so a failing node's rules that stored no row passed. The rule CATALOG checks every mart in one
singular test of its name, whose failing rows name their mart: a mart that stored no row passed it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

TEST = "mart_checks"  # the generic test's name (test_metadata.name)
CATALOG = "catalog_matches_contract"  # the rule and the singular test (tests/catalog_matches_contract.sql)
NOT_CHECKED = "not checked"  # a rule a var switched off on purpose, e.g. --vars '{files_checked: false}'


def rules(kwargs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The rules of a mart_checks test's arguments, name -> arguments, read as macro mart_rules reads them: an
    entry is a rule's name, or a mapping of one name to its arguments."""
    found = {}
    for entry in kwargs["rules"]:
        name, arguments = (entry, None) if isinstance(entry, str) else next(iter(entry.items()))
        found[name] = dict(arguments or {})
    return found


def problems(
    cur: psycopg2.extensions.cursor, failures_relation: str, by: str = "rule"
) -> dict[str, list[tuple[str, int]]]:
    """The stored failing rows of a mart_checks node: rule -> its problems with their row counts, most frequent
    first; of the CATALOG test, `by` "mart": mart -> its problems."""
    cur.execute(
        sql.SQL("select {}, problem, count(*) from {} group by 1, 2 order by 1, 3 desc, 2").format(
            sql.Identifier(by), sql.SQL(failures_relation)
        )
    )
    found: dict[str, list[tuple[str, int]]] = {}
    for rule, problem, rows in cur.fetchall():
        found.setdefault(rule, []).append((problem, rows))
    return found


def outcomes(rule_names: Iterable[str], not_checked: Iterable[str], status: str, failed: set[str]) -> dict[str, str]:
    """Each rule's outcome from its node's dbt status: a failing node fails the rules of its stored rows
    (`failed`, the keys of problems()) and passes the others; a rule a var switched off is NOT_CHECKED; any
    other status (error, skipped, ...) is every rule's. Of the CATALOG test, the same for each mart: pass its
    marts as `rule_names`."""

    def outcome(name: str) -> str:
        if name in not_checked:
            return NOT_CHECKED
        if status != "fail":
            return status
        return "fail" if name in failed else "pass"

    return {name: outcome(name) for name in rule_names}
