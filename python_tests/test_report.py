"""scripts/report on real dbt results: one line per v2 table, red only where wrong, exit status pass/fail."""

from __future__ import annotations

import json

import pytest
from rich.table import Table
from test_validation import dbt_test, live_v2, tampered  # noqa: F401  (live_v2: the shared migrated database)

import report


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
    dbt_test("domains areas migration_rejects")
    assert report.main([]) == 0
    lines = {line.table: line for line in report.build().tables}
    assert (lines["domains"].v1_rows, lines["domains"].v2_rows, lines["domains"].rejected) == (5, 5, 0)
    assert lines["areas"].checks["FKs"] == "pass"
    data = json.loads((report.TARGET / "report.json").read_text())
    assert data["passed"] is True and data["failures"] == []
    assert "| areas | 10 | 10 | 0 | 0 | pass |" in (report.TARGET / "report.md").read_text()
    assert red_cells(report.render(report.build())) == set()


@pytest.mark.usefixtures("live_v2")
def test_a_broken_table_fails_the_report_in_red_where_it_is_wrong_only() -> None:
    with tampered("areas", "delete from public.areas where id = (select min(id::text)::uuid from public.areas)"):
        dbt_test("domains areas migration_rejects")
        assert report.main([]) == 1
        built = report.build()
    assert red_cells(report.render(built)) == {("areas", "v1"), ("areas", "v2"), ("areas", "counts"), ("areas", "ids")}
    failures = json.loads((report.TARGET / "report.json").read_text())["failures"]
    assert "areas: v2 9 + rejected 0 != v1 10" in failures
    assert "areas: ids: in v1 but neither in v2 nor rejected (1 row)" in failures
    assert "## Failures" in (report.TARGET / "report.md").read_text()
