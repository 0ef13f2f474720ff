"""Reconciliation report of the last `dbt build` or `dbt test`: was anything lost?

One line per v2 table: v1 rows, v2 rows, rows rejected and adjusted, and the
outcome of each validation check on it (a rule of the mart's one data test,
mart_checks); then every other rule and dbt test, and the rejects. Outcomes come
from dbt's target/run_results.json (which test ran on which table, with which
rules, from target/manifest.json) and each failing rule from the rows its test
stored; row counts are queried from the relations that run read. Written to the terminal as a rich table and
to target/report.md and target/report.json. Exit status 0 only when every
check passed, every v1 row is accounted for, and no loss (a rejected row, a
blob missing at the source) is left unaccepted. scripts/migrate adds what its
publish step noted (an allowed shrink, no app role) to the same report. The
app's writes to live v2 that `scripts/migrate --carry-forward` could not merge
into the last build (conflicts) are listed with both versions; they are kept
in lifeos_migration.conflicts and fail nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg2.extensions
from psycopg2 import sql
from rich.markup import escape
from rich.table import Table

import lifeos_env
from lifeos import catalog, conflicts, mart_checks, runs
from lifeos.conflicts import Conflict
from lifeos.console import console
from lifeos.manifest import load_json
from lifeos.manifest import read as read_manifest
from lifeos.settings import Settings

PROJECT = "lifeos_migration"
# The validation checks (rules of mart_checks, macros/checks/), in report order, with their column heading.
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
NOT_CHECKED = mart_checks.NOT_CHECKED


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
class MissingBlob:
    """A v1 files row whose blob the files step did not find at the source (manifest status missing)."""

    file_id: str
    object_key: str
    detail: str | None


@dataclass
class Report:
    tables: list[TableLine]
    checks: list[Check]  # every rule and dbt test that is not a per-table validation check, e.g. rejects_policy
    rejects: list[tuple[str, str, str, int]]  # v1 table, action, rule, rows
    accept_rejects: bool  # the run's var accept_rejects (scripts/migrate --accept-rejects)
    missing_blobs: list[MissingBlob] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what a person should know though nothing failed
    conflicts: list[Conflict] = field(default_factory=list)  # of the last build's carry-forward

    def passed_check(self, name: str) -> bool:
        return any(c.name == name and c.status in GOOD for c in self.checks)

    @property
    def rejects_accepted(self) -> bool:
        """Accepted by the run's flag, or by the rejects policy (it accepts what live v2's publish recorded)."""
        return self.accept_rejects or self.passed_check("rejects_policy")

    @property
    def blobs_accepted(self) -> bool:
        """Accepted by the run's flag, or by check 4 on files (it passes a missing blob only when accepted)."""
        files = next((t for t in self.tables if t.table == "files"), None)
        return self.accept_rejects or (files is not None and files.checks.get(CHECKS["file_blobs_verified"]) in GOOD)

    def losses(self) -> list[tuple[str, bool]]:
        """Each loss in words, and whether it is accepted: rows rejected and adjusted by table and rule,
        each blob missing at the source. Adjusted rows are in v2: always accepted."""
        found = [
            (f"{table}: {rows} {action} by rule {rule}", None if action == "adjusted" else self.rejects_accepted)
            for table, action, rule, rows in self.rejects
        ]
        found += [
            (f"files {blob.file_id}: blob {blob.object_key!r} missing at source", self.blobs_accepted)
            for blob in self.missing_blobs
        ]
        return [
            (text, True)
            if accepted is None
            else (text + ", accepted", True)
            if accepted
            else (text + " (scripts/migrate --accept-rejects accepts it)", False)
            for text, accepted in found
        ]

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
        problems += [text for text, accepted in self.losses() if not accepted]
        return problems

    @property
    def passed(self) -> bool:
        return not self.failures


def count(cur: psycopg2.extensions.cursor, relation: str) -> int | None:
    """Rows of a relation named as dbt's manifest names it ("db"."schema"."table"); None when it does not exist."""
    cur.execute("select to_regclass(%s) is null", (relation,))
    if cur.fetchone()[0]:
        return None
    cur.execute(sql.SQL("select count(*) from {}").format(sql.SQL(relation)))
    return cur.fetchone()[0]


def in_words(heading: str, problems: list[tuple[str, int]]) -> list[str]:
    """The most frequent problems a failed rule stored (every failing row has a `problem` column)."""
    return [f"{heading}: {problem} ({rows} row{'s' * (rows != 1)})" for problem, rows in problems[:5]]


def missing_blobs(cur: psycopg2.extensions.cursor, settings: Settings) -> list[MissingBlob]:
    """The files rows whose blob the last files step found missing at the source."""
    query = "select file_id::text, object_key, detail from {} where status = 'missing' and file_id is not null"
    query += " order by object_key, file_id"
    return [MissingBlob(*row) for row in runs.rows_of(cur, settings, "file_manifest", query)]


def record_rules(
    cur: psycopg2.extensions.cursor, line: TableLine, test: dict, rules: dict[str, dict], outcome: dict | None
) -> list[Check]:
    """Record each rule of a mart's mart_checks test on the mart's line, with what a failing one stored; return
    the rules without a column of their own (catalog_matches_contract, acyclic, ...) as checks, when it ran."""
    status = outcome["status"] if outcome else "not run"
    found = mart_checks.problems(cur, test["relation_name"]) if status == "fail" else {}
    not_checked = test["config"]["meta"].get("rules_not_checked", [])
    others = []
    for rule, rule_status in mart_checks.outcomes(rules, not_checked, status, set(found)).items():
        if rule in CHECKS:
            line.checks[CHECKS[rule]] = rule_status
            line.problems += in_words(CHECKS[rule], found.get(rule, []))
        elif outcome:
            others.append(rule_check(rule, line.table, rule_status, found.get(rule, []), outcome))
    return others


def catalog_checks(cur: psycopg2.extensions.cursor, marts: list[str], test: dict, outcome: dict) -> list[Check]:
    """Rule catalog_matches_contract of each mart, from its one test of every mart, with what a failing mart
    lacks."""
    status = outcome["status"]
    found = mart_checks.problems(cur, test["relation_name"], by="mart") if status == "fail" else {}
    return [
        rule_check(mart_checks.CATALOG, mart, mart_status, found.get(mart, []), outcome)
        for mart, mart_status in mart_checks.outcomes(sorted(marts), (), status, set(found)).items()
    ]


def rule_check(rule: str, table: str, status: str, problems: list[tuple[str, int]], outcome: dict) -> Check:
    """A rule of a mart without a column of its own, as a check named `<rule>:<mart>`."""
    detail = "; ".join(in_words(rule, problems))
    if status not in GOOD:  # the node's message is its failing rules', not a passing rule's
        detail = detail or outcome["message"] or ""
    return Check(f"{rule}:{table}", status, detail)


def where_v2_is(cur: psycopg2.extensions.cursor, settings: Settings, run_vars: dict) -> str:
    """The schema the report counts v2 in, as the last dbt run found it (macros/where_v2_is.sql): the one its
    --vars named, else the shadow while it holds a build, else live v2, once a publish has renamed the shadow."""
    if "marts_schema" in run_vars:
        return run_vars["marts_schema"]
    return settings.marts_schema if catalog.tables(cur, settings.marts_schema) else settings.v2_schema


def build(settings: Settings, target: Path | None = None) -> Report:
    """Read the last dbt run's results and manifest (in `target`, default the settings' target folder), and count
    rows in the relations it read."""
    target = target or settings.target
    manifest = read_manifest(target)
    nodes = manifest["nodes"]
    run_results = load_json(target / "run_results.json")
    outcomes = {r["unique_id"]: r for r in run_results["results"]}
    run_vars = run_results["args"].get("vars") or {}
    accept_rejects = settings.with_vars(**run_vars).accept_rejects

    tests = [node for node in nodes.values() if node["resource_type"] == "test"]
    rules = {  # mart_checks test unique_id -> its rules, name -> arguments
        test["unique_id"]: mart_checks.rules(test["test_metadata"]["kwargs"])
        for test in tests
        if (test.get("test_metadata") or {}).get("name") == mart_checks.TEST
    }
    v1_tables = {  # mart unique_id -> the v1 table its checks compare with
        test["attached_node"]: arguments["v1_table"]
        for test in tests
        for name, arguments in rules.get(test["unique_id"], {}).items()
        if name in CHECKS and "v1_table" in arguments
    }
    other: list[Check] = []
    with lifeos_env.transaction() as cur:
        rejects_node = nodes[f"model.{PROJECT}.migration_rejects"]
        rejects_relation = rejects_node["relation_name"]
        cur.execute("select current_database()")
        here = cur.fetchone()[0]
        if rejects_node["database"] != here or count(cur, rejects_relation) is None:
            raise lifeos_env.MigrationError(
                f"the last dbt run read {rejects_relation}, which database {here} does not hold (dropped by"
                " cleanup, or a run on another database): run `dbt test` or scripts/migrate, then the report"
            )
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
        where = where_v2_is(cur, settings, run_vars)
        for uid, node in nodes.items():
            if node["resource_type"] == "model" and node["fqn"][1] == "marts":
                v1_table = v1_tables.get(uid)
                v1 = manifest["sources"].get(f"source.{PROJECT}.v1.{v1_table}", {}).get("relation_name")
                lines[uid] = TableLine(
                    node["name"],
                    v1_table,
                    count(cur, v1) if v1 else None,
                    count(cur, catalog.qualified(where, node["alias"]).as_string(cur)),
                    logged[v1_table, "rejected"],
                    logged[v1_table, "adjusted"],
                )
        for test in sorted(tests, key=lambda n: n["unique_id"]):
            outcome = outcomes.get(test["unique_id"])
            status = outcome["status"] if outcome else "not run"
            line = lines.get(test.get("attached_node") or "")
            if test["unique_id"] in rules and line:
                other += record_rules(cur, line, test, rules[test["unique_id"]], outcome)
            elif outcome and test["name"] == mart_checks.CATALOG:
                other += catalog_checks(cur, [line.table for line in lines.values()], test, outcome)
            elif outcome:
                other.append(Check(test["name"], status, "" if status in GOOD else outcome["message"] or ""))
        files_checked = any(
            t.v1_table == "files" and t.checks.get(CHECKS["file_blobs_verified"], NOT_CHECKED) != NOT_CHECKED
            for t in lines.values()
        )
        blobs = missing_blobs(cur, settings) if files_checked else []
        carried_over = conflicts.of_last_build(cur, settings)
    return Report(
        sorted(lines.values(), key=lambda t: t.table), other, rejects, accept_rejects, blobs, conflicts=carried_over
    )


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
            style(str(line.rejected), line.rejected > 0 and not report.rejects_accepted),
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
    table.add_row(f"{passing} more checks", outcome_cell("pass"))
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
        f"## Rejects, adjustments and missing blobs (accept_rejects: {str(report.accept_rejects).lower()})",
        "",
        *(f"- {text}" for text, _ in report.losses()),
    ]
    if report.conflicts:
        text += [
            "",
            "## Conflicts: the app's writes not carried forward (lifeos_migration.conflicts)",
            "",
            *(line for conflict in report.conflicts for line in conflict_lines(conflict)),
        ]
    if report.notes:
        text += ["", "## Notes", "", *(f"- {note}" for note in report.notes)]
    if report.failures:
        text += ["", "## Failures", "", *(f"- {failure}" for failure in report.failures)]
    return "\n".join(text) + "\n"


def conflict_lines(conflict: Conflict) -> list[str]:
    """A conflict in words, then both versions."""
    return [
        f"- {conflict.table} {conflict.row_id}: {conflict.reason}",
        f"  - app (live v2): {json.dumps(conflict.app_version, sort_keys=True)}",
        f"  - v1 (new v2): {json.dumps(conflict.v1_version, sort_keys=True)}",
    ]


EMPTY = (
    "v1 holds no rows at all: every v2 table is empty (publishing it over a live v2 that has rows needs --allow-shrink)"
)


def note(report: Report, notes: list[str], target: Path) -> None:
    """Add notes (e.g. from the publish step) to the report: print them, and (re)write report.md and report.json."""
    report.notes += notes
    for line in notes:
        console.print(f"[yellow]note: {escape(line)}[/yellow]", soft_wrap=True)
    write(report, target)


def write(report: Report, target: Path) -> None:
    (target / "report.md").write_text(markdown(report))
    losses = [{"loss": text, "accepted": accepted} for text, accepted in report.losses()]
    data = {**asdict(report), "losses": losses, "passed": report.passed, "failures": report.failures}
    (target / "report.json").write_text(json.dumps(data, indent=2) + "\n")


def checks_before_a_rollback(settings: Settings, target: Path) -> list[str]:
    """A note when live v2 was rolled back after the dbt run whose checks the report shows: they checked the v2
    the rollback replaced, not the live one counted beside them."""
    generated_at = load_json(target / "run_results.json")["metadata"]["generated_at"]
    query = "select max(finished_at) from {} where result = 'rolled back' and finished_at > %s::timestamptz"
    with lifeos_env.transaction() as cur:
        found = runs.rows_of(cur, settings, "runs", query, (generated_at,))
    if not found or found[0][0] is None:
        return []
    return [
        f"live v2 was rolled back at {found[0][0]:%Y-%m-%d %H:%M:%S %Z}, after the dbt run whose checks this shows"
        f" ({generated_at}): run `dbt test` to check the live v2 counted here"
    ]


def run(settings: Settings, target: Path | None = None) -> Report:
    """The report step of scripts/migrate: print, write target/report.{md,json}; raise when it fails."""
    target = target or settings.target
    report = build(settings, target)
    console.print(render(report))
    console.print(render_checks(report))
    failures = report.failures
    for text, accepted in report.losses():
        console.print(style(escape(text), not accepted), highlight=False, soft_wrap=True)
    for failure in failures:
        console.print(style(escape(failure), True), highlight=False, soft_wrap=True)
    for conflict in report.conflicts:
        for line in conflict_lines(conflict):
            console.print(f"[yellow]{escape(line)}[/yellow]", highlight=False, soft_wrap=True)
    empty = bool(report.tables) and not any(line.v1_rows for line in report.tables)
    note(report, checks_before_a_rollback(settings, target) + ([EMPTY] if empty else []), target)
    if not report.passed:
        raise lifeos_env.MigrationError(
            f"validation failed: {len(report.failures)} problems, listed above and in {target / 'report.md'}"
        )
    summary = " [yellow](v1 held no rows: v2 is EMPTY)[/yellow]" if empty else ""
    console.print(f"[green]validation passed[/green]{summary}: report in {target / 'report.md'} and report.json")
    return report
