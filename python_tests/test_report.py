"""scripts/report on real dbt results: one line per v2 table, red only where wrong, exit status pass/fail."""

from __future__ import annotations

import json

import pytest
from conftest import run_dbt
from rich.table import Table
from test_validation import dbt_test, live_v2, tampered  # noqa: F401  (live_v2: the shared migrated database)

import lifeos_env
from lifeos import cli, report
from lifeos.settings import load as load_settings


def red_cells(table: Table) -> set[tuple[str, str]]:
    """(row's table name, column heading) of every cell rendered red."""
    names = [str(name) for name in table.columns[0].cells]
    return {
        (names[row], str(column.header))
        for column in table.columns
        for row, cell in enumerate(column.cells)
        if "[red]" in str(cell)
    }


@pytest.mark.usefixtures("live_v2")
def test_a_clean_run_reports_every_table_and_passes() -> None:
    dbt_test("marts migration_rejects")
    assert cli.main(["report"]) == 0
    lines = {line.table: line for line in report.build(load_settings()).tables}
    assert (lines["domains"].v1_rows, lines["domains"].v2_rows, lines["domains"].rejected) == (5, 5, 0)
    assert lines["areas"].checks["FKs"] == "pass"
    data = json.loads((load_settings().target / "report.json").read_text())
    assert data["passed"] is True and data["failures"] == []
    assert "| areas | 10 | 10 | 0 | 0 | pass |" in (load_settings().target / "report.md").read_text()
    assert red_cells(report.render(report.build(load_settings()))) == set()


@pytest.mark.usefixtures("live_v2")
def test_a_broken_table_fails_the_report_in_red_where_it_is_wrong_only() -> None:
    leaf = "delete from public.daily_focus where id = (select min(id::text)::uuid from public.daily_focus)"
    with tampered("daily_focus", leaf):
        dbt_test("marts migration_rejects")
        assert cli.main(["report"]) == 1
        built = report.build(load_settings())
    wrong = {("daily_focus", "v1"), ("daily_focus", "v2"), ("daily_focus", "counts"), ("daily_focus", "ids")}
    assert red_cells(report.render(built)) == wrong
    failures = json.loads((load_settings().target / "report.json").read_text())["failures"]
    assert "daily_focus: counts: v2 rows 99 + rejected 0 != v1 rows 100 + added 0 (1 row)" in failures
    assert "daily_focus: ids: in v1 but neither in v2 nor rejected (1 row)" in failures
    assert "## Failures" in (load_settings().target / "report.md").read_text()


@pytest.mark.usefixtures("live_v2")
def test_a_run_without_the_files_step_says_not_checked_never_passed() -> None:
    dbt_test("marts migration_rejects", "{files_checked: false}")
    assert cli.main(["report"]) == 0
    files = next(line for line in report.build(load_settings()).tables if line.table == "files")
    assert files.checks["files"] == report.NOT_CHECKED
    assert "| files | 20 | 20 | 0 | 0 |" in (load_settings().target / "report.md").read_text()
    assert "| not checked |" in (load_settings().target / "report.md").read_text()


@pytest.mark.usefixtures("live_v2")
def test_rejects_fail_the_report_unless_accepted_and_stay_listed_either_way() -> None:
    first = "(select min(id::text)::uuid from public.daily_focus)"
    reject = (
        "insert into v2_work.migration_rejects (v1_table, v1_id, action, rule, detail, v1_row)"
        f" select 'daily_focus', id, 'rejected', 'orphan_fk', 'test', to_jsonb(daily_focus) from v1.daily_focus"
        f" where id = {first}"
    )
    with (
        tampered("migration_rejects", reject, schema="v2_work"),
        tampered("daily_focus", f"delete from public.daily_focus where id = {first}"),
    ):
        dbt_test("marts migration_rejects")
        assert cli.main(["report"]) == 1
        assert red_cells(report.render(report.build(load_settings()))) == {("daily_focus", "rejected")}
        assert "daily_focus: 1 rejected by rule orphan_fk" in " ".join(report.build(load_settings()).failures)
        dbt_test("marts migration_rejects", "{accept_rejects: true}")
        assert cli.main(["report"]) == 0
        accepted = report.build(load_settings())
    assert red_cells(report.render(accepted)) == set()
    assert accepted.rejects == [  # and the sample's repeated focus item, in v2 but inactive
        ("daily_focus", "adjusted", "duplicate_deactivated", 1),
        ("daily_focus", "rejected", "orphan_fk", 1),
    ]
    assert "- daily_focus: 1 rejected by rule orphan_fk" in (load_settings().target / "report.md").read_text()


@pytest.mark.usefixtures("live_v2")
def test_a_table_the_run_did_not_build_is_reported_missing() -> None:
    dbt_test("marts migration_rejects")
    with lifeos_env.transaction() as cur:
        cur.execute("alter table public.reminders rename to reminders_away")
    try:
        assert cli.main(["report"]) == 1
        built = report.build(load_settings())
    finally:
        with lifeos_env.transaction() as cur:
            cur.execute("alter table public.reminders_away rename to reminders")
    assert ("reminders", "v2") in red_cells(report.render(built))
    assert "reminders: missing, the last dbt run did not build it" in built.failures


@pytest.mark.usefixtures("live_v2")
def test_after_a_publish_the_report_counts_live_v2_as_dbt_test_finds_it() -> None:
    """`dbt test` with no var validates live v2 once a publish has renamed the shadow; the report counts it there."""
    _, outcomes, output = run_dbt("test", "--select", "marts migration_rejects")
    assert outcomes and set(outcomes.values()) == {"pass"}, output
    assert cli.main(["report"]) == 0
    lines = {line.table: line for line in report.build(load_settings()).tables}
    assert (lines["domains"].v1_rows, lines["domains"].v2_rows) == (5, 5)
    assert all(line.v2_rows is not None for line in lines.values())


@pytest.mark.usefixtures("live_v2")
def test_two_rules_failing_on_one_mart_are_both_named_and_a_passing_rule_carries_no_failure() -> None:
    """A dropped row and a changed copied value in one mart: the report names each failing rule with its rows; a
    rule of the same node that passed (acyclic) is not given the node's failure message."""
    first = (
        "(select min(id::text)::uuid from public.tasks t where not exists (select from tasks where parent_id = t.id))"
    )
    last = "(select max(id::text)::uuid from public.tasks)"
    with tampered("tasks", f"delete from public.tasks where id = {first}",
                  f"update public.tasks set status = 'done' where id = {last}"):  # fmt: skip
        dbt_test("tasks")
        built = report.build(load_settings())
    assert {"tasks: counts: v2 rows 199 + rejected 0 != v1 rows 200 + added 0 (1 row)",
            "tasks: columns: differs from v1: status (1 row)"} <= set(built.failures)  # fmt: skip
    passed = next(check for check in built.checks if check.name == "acyclic:tasks")
    assert (passed.status, passed.detail) == ("pass", "")


@pytest.mark.usefixtures("live_v2")
def test_a_report_whose_dbt_run_is_gone_says_so_in_one_line() -> None:
    """After `lifeos cleanup` dropped what the last dbt run read (or `export-ddl` ran dbt on a scratch database),
    the report asks for a new run instead of a traceback."""
    dbt_test("marts migration_rejects")
    with lifeos_env.transaction() as cur:
        cur.execute("alter table v2_work.migration_rejects rename to migration_rejects_away")
    try:
        with pytest.raises(lifeos_env.MigrationError, match=r"^the last dbt run read .*rejects\", which database"):
            report.build(load_settings())
        assert cli.main(["report"]) == 1
    finally:
        with lifeos_env.transaction() as cur:
            cur.execute("alter table v2_work.migration_rejects_away rename to migration_rejects")
