"""Reconciliation report of the last `dbt build` or `dbt test`: was anything lost?

One line per v2 table: v1 rows, v2 rows, rows rejected and adjusted, and the
outcome of each validation check on it (tests/generic/); then every other dbt
test and the rejects. Outcomes come from dbt's target/run_results.json (which
test ran on which table from target/manifest.json); row counts are queried
from the relations that run read. Written to the terminal as a rich table and
to target/report.md and target/report.json. Exit status 0 only when every
check passed, every v1 row is accounted for, and no reject is left unaccepted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg2.extensions
import yaml
from psycopg2 import sql
from rich.console import Console
from rich.table import Table

import lifeos_env

TARGET = lifeos_env.ROOT / os.environ.get("DBT_TARGET_PATH", "target")  # where dbt writes, as dbt resolves it
PROJECT = "lifeos_migration"
# The validation checks (generic tests in tests/generic/), in report order, with their column heading.
CHECKS = {
    "reconcile_row_count": "counts",
    "reconcile_ids": "ids",
    "foreign_keys_resolve": "FKs",
    "copied_columns_match": "columns",
    "content_hash_matches": "content",
    "hierarchy_matches_v1": "tree",
    "file_blobs_verified": "files",
}
GOOD = {"pass", "success"}
NOT_CHECKED = "not checked"  # a check disabled on purpose, e.g. --vars '{files_checked: false}'
console = Console(width=160) if not sys.stdout.isatty() else Console()


@dataclass
class TableLine:
    table: str
    v1_table: str | None  # None: a table new in v2, with no v1 data
    v1_rows: int | None
    v2_rows: int | None  # None: the relation does not exist (the last dbt run did not build it)
    rejected: int
    adjusted: int
    checks: dict[str, str] = field(default_factory=dict)  # check column -> outcome
    problems: list[str] = field(default_factory=list)  # what a failed check found, from its stored failures

    @property
    def accounted(self) -> bool:
        """Whether check 1 found v2 + rejected == v1 (+ rows the mapping adds on purpose)."""
        counted = self.v1_table is None or self.checks.get(CHECKS["reconcile_row_count"]) in GOOD
        return counted and self.v2_rows is not None


@dataclass
class Check:
    name: str
    status: str
    detail: str


@dataclass
class Report:
    tables: list[TableLine]
    checks: list[Check]  # every dbt test that is not a per-table validation check, e.g. rejects_policy
    rejects: list[tuple[str, str, str, int]]  # v1 table, action, rule, rows
    accept_rejects: bool

    @property
    def failures(self) -> list[str]:
        problems = [f"{t.table}: missing, the last dbt run did not build it" for t in self.tables if t.v2_rows is None]
        problems += [
            f"{t.table}: {name} {status}"
            for t in self.tables
            for name, status in t.checks.items()
            if status not in GOOD and status != NOT_CHECKED
        ]
        problems += [f"{t.table}: {problem}" for t in self.tables for problem in t.problems]
        problems += [f"{c.name} {c.status}" for c in self.checks if c.status not in GOOD]
        if not self.accept_rejects:
            problems += [
                f"{table}: {rows} rows rejected by rule {rule} (--vars '{{accept_rejects: true}}' accepts them)"
                for table, action, rule, rows in self.rejects
                if action == "rejected"
            ]
        return problems

    @property
    def passed(self) -> bool:
        return not self.failures


def load_json(path: Path) -> dict:
    if not path.exists():
        raise lifeos_env.MigrationError(f"{path} is missing: run `dbt build` (or `dbt test`) before the report")
    return json.loads(path.read_text())


def count(cur: psycopg2.extensions.cursor, relation: str) -> int | None:
    """Rows of a relation named as dbt's manifest names it ("db"."schema"."table"); None when it does not exist."""
    cur.execute("select to_regclass(%s) is null", (relation,))
    if cur.fetchone()[0]:
        return None
    cur.execute(sql.SQL("select count(*) from {}").format(sql.SQL(relation)))
    return cur.fetchone()[0]


def stored_problems(cur: psycopg2.extensions.cursor, check: str, failures_relation: str) -> list[str]:
    """The most frequent problems a failed validation test stored (every one has a `problem` column)."""
    cur.execute(
        sql.SQL("select problem, count(*) from {} group by 1 order by 2 desc, 1 limit 5").format(
            sql.SQL(failures_relation)
        )
    )
    return [f"{check}: {problem} ({rows} row{'s' * (rows != 1)})" for problem, rows in cur.fetchall()]


def build(target: Path = TARGET) -> Report:
    """Read the last dbt run's results and manifest, and count rows in the relations it read."""
    manifest = load_json(target / "manifest.json")
    nodes = manifest["nodes"]
    run_results = load_json(target / "run_results.json")
    outcomes = {r["unique_id"]: r for r in run_results["results"]}
    project_vars = yaml.safe_load((lifeos_env.ROOT / "dbt_project.yml").read_text())["vars"]
    accept_rejects = bool({**project_vars, **(run_results["args"].get("vars") or {})}["accept_rejects"])
    disabled = [n for versions in manifest.get("disabled", {}).values() for n in versions]

    tests = [node for node in nodes.values() if node["resource_type"] == "test"]
    v1_tables = {  # mart unique_id -> the v1 table its checks compare with
        test["attached_node"]: test["test_metadata"]["kwargs"]["v1_table"]
        for test in tests
        if (test.get("test_metadata") or {}).get("name") in CHECKS and "v1_table" in test["test_metadata"]["kwargs"]
    }
    other: list[Check] = []
    with lifeos_env.transaction() as cur:
        rejects_relation = nodes[f"model.{PROJECT}.migration_rejects"]["relation_name"]
        cur.execute(
            sql.SQL("select v1_table, action, rule, count(*) from {} group by 1, 2, 3 order by 1, 2, 3").format(
                sql.SQL(rejects_relation)
            )
        )
        rejects = [tuple(row) for row in cur.fetchall()]
        logged = Counter()
        for v1_table, action, _, rows in rejects:
            logged[v1_table, action] += rows
        lines: dict[str, TableLine] = {}  # every v2 table (a model under models/marts), by unique_id
        for uid, node in nodes.items():
            if node["resource_type"] == "model" and node["fqn"][1] == "marts":
                v1_table = v1_tables.get(uid)
                v1 = manifest["sources"].get(f"source.{PROJECT}.v1.{v1_table}", {}).get("relation_name")
                lines[uid] = TableLine(
                    node["name"],
                    v1_table,
                    count(cur, v1) if v1 else None,
                    count(cur, node["relation_name"]),
                    logged[v1_table, "rejected"],
                    logged[v1_table, "adjusted"],
                )
        for test in sorted(tests, key=lambda n: n["unique_id"]):
            outcome = outcomes.get(test["unique_id"])
            status = outcome["status"] if outcome else "not run"
            check = (test.get("test_metadata") or {}).get("name")
            line = lines.get(test.get("attached_node") or "")
            if check in CHECKS and line:
                line.checks[CHECKS[check]] = status
                if status == "fail":
                    line.problems += stored_problems(cur, CHECKS[check], test["relation_name"])
            elif outcome:
                other.append(Check(test["name"], status, "" if status in GOOD else outcome["message"] or ""))
    for test in disabled:
        check = (test.get("test_metadata") or {}).get("name")
        line = lines.get(test.get("attached_node") or "")
        if check in CHECKS and line:
            line.checks[CHECKS[check]] = NOT_CHECKED
    return Report(sorted(lines.values(), key=lambda t: t.table), other, rejects, accept_rejects)


def style(text: str, wrong: bool) -> str:
    return f"[red]{text}[/red]" if wrong else text


def number(rows: int | None, absent: str = "—") -> str:
    return absent if rows is None else str(rows)


def outcome_cell(status: str | None) -> str:
    if status is None:
        return "—"
    if status == NOT_CHECKED:
        return f"[yellow]{status}[/yellow]"
    return "✓" if status in GOOD else style(f"✗ {status}", True)


def render(report: Report) -> Table:
    table = Table(title="v1 → v2 reconciliation")
    for heading in ("table", "v1", "v2", "rejected", "adjusted", *CHECKS.values()):
        table.add_column(heading, justify="left" if heading == "table" else "right")
    for line in report.tables:
        table.add_row(
            line.table if line.v1_table in (None, line.table) else f"{line.table} (v1 {line.v1_table})",
            style(number(line.v1_rows), not line.accounted),
            style(number(line.v2_rows, "missing"), not line.accounted),
            style(str(line.rejected), line.rejected > 0 and not report.accept_rejects),
            str(line.adjusted),
            *(outcome_cell(line.checks.get(heading)) for heading in CHECKS.values()),
        )
    return table


def render_checks(report: Report) -> Table:
    """The rejects policy and every check that did not pass by name; the passing rest as one count."""
    table = Table(title="other checks")
    table.add_column("check")
    table.add_column("outcome")
    passing = 0
    for check in report.checks:
        if check.status in GOOD and check.name != "rejects_policy":
            passing += 1
        else:
            table.add_row(check.name, " ".join(filter(None, [outcome_cell(check.status), check.detail])))
    table.add_row(f"{passing} more dbt tests", outcome_cell("pass"))
    return table


def markdown(report: Report) -> str:
    headings = ["table", "v1 rows", "v2 rows", "rejected", "adjusted", *CHECKS.values()]
    rows = [
        [t.table, number(t.v1_rows), number(t.v2_rows, "missing"), str(t.rejected), str(t.adjusted)]
        + [t.checks.get(h, "—") for h in CHECKS.values()]
        for t in report.tables
    ]
    text = [
        "# v1 → v2 reconciliation",
        "",
        f"Result: **{'PASS' if report.passed else 'FAIL'}**",
        "",
        "| " + " | ".join(headings) + " |",
        "|" + " --- |" * len(headings),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        "## Other checks",
        "",
        *(f"- {c.name}: {c.status}{': ' + c.detail if c.detail else ''}" for c in report.checks),
        "",
        f"## Rejects and adjustments (accept_rejects: {str(report.accept_rejects).lower()})",
        "",
        *(f"- {table}: {rows} {action} by rule {rule}" for table, action, rule, rows in report.rejects),
    ]
    if report.failures:
        text += ["", "## Failures", "", *(f"- {failure}" for failure in report.failures)]
    return "\n".join(text) + "\n"


def write(report: Report, target: Path = TARGET) -> None:
    (target / "report.md").write_text(markdown(report))
    data = {**asdict(report), "passed": report.passed, "failures": report.failures}
    (target / "report.json").write_text(json.dumps(data, indent=2) + "\n")


def run(target: Path = TARGET) -> Report:
    """The report step of scripts/migrate: print, write target/report.{md,json}; raise when it fails."""
    report = build(target)
    console.print(render(report))
    console.print(render_checks(report))
    for v1_table, action, rule, rows in report.rejects:
        accepted = action == "adjusted" or report.accept_rejects
        console.print(style(f"{v1_table}: {rows} {action} by rule {rule}", not accepted))
    for failure in report.failures:
        console.print(style(failure, True))
    write(report, target)
    if not report.passed:
        raise lifeos_env.MigrationError(
            f"validation failed: {len(report.failures)} problems, listed above and in {target / 'report.md'}"
        )
    console.print(f"[green]validation passed[/green]: report in {target / 'report.md'} and report.json")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--target", type=Path, default=TARGET, help="dbt's target folder (default: DBT_TARGET_PATH, else target/)"
    )
    args = parser.parse_args(argv)
    try:
        lifeos_env.ensure_target()
        run(args.target)
    except lifeos_env.MigrationError as error:
        console.print(f"[red]{error}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
