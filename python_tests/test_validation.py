"""The validation checks fail when what they check is broken, and only those checks.

One database: the sample is migrated once with `dbt build`, then published by
renaming v2_shadow to the live schema (as the publish step does), so `dbt test`
validates live v2 exactly as after a real cut-over. Each test breaks one thing
in live v2 (with FK triggers off, as a broken copy would have it), runs
`dbt test` on the tables concerned, reads target/run_results.json and asserts
the exact set of checks that failed, then puts the table back.
`--no-partial-parse`: dbt's saved manifest from `dbt build` names the shadow
schema; a fresh parse makes `dbt test` read the live one.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions
import pytest
from conftest import drop_database, new_database

import generate_sample
import lifeos_env
import migrate
import report

Cursor = psycopg2.extensions.cursor
BUILD_VARS = "{files_checked: false}"


@pytest.fixture(scope="session")
def live_v2() -> Iterator[str]:
    """A database with the sample migrated, validated and published into `public`."""
    name = new_database()
    previous = os.environ["PGDATABASE"]
    os.environ["PGDATABASE"] = name
    try:
        generate_sample.main(["--schema", "v1"])
        migrate.dbt("build", "--vars", BUILD_VARS)
        with lifeos_env.transaction() as cur:
            cur.execute("drop schema public cascade; alter schema v2_shadow rename to public")
        yield name
    finally:
        os.environ["PGDATABASE"] = previous
        drop_database(name)


def dbt_test(select: str, dbt_vars: str = BUILD_VARS) -> tuple[dict[str, str], str]:
    """Run `dbt test --select` on live v2; return {check: status} and dbt's output.

    A check is named `<generic test>:<model>` (e.g. reconcile_ids:areas), a singular test by its name.
    """
    command = ["dbt", "test", "--no-partial-parse", "--vars", dbt_vars, "--select", select]
    output = subprocess.run(command, cwd=lifeos_env.ROOT, capture_output=True, text=True).stdout
    target = lifeos_env.ROOT / "target"
    nodes = json.loads((target / "manifest.json").read_text())["nodes"]
    outcomes = {}
    for result in json.loads((target / "run_results.json").read_text())["results"]:
        node = nodes[result["unique_id"]]
        if node["resource_type"] != "test":
            continue
        check = (node.get("test_metadata") or {}).get("name")
        attached = nodes.get(node.get("attached_node") or "", {}).get("name")
        outcomes[f"{check}:{attached}" if check and attached else node["name"]] = result["status"]
    assert outcomes, output
    return outcomes, output


def failed(outcomes: dict[str, str]) -> set[str]:
    return {check for check, status in outcomes.items() if status != "pass"}


@contextmanager
def tampered(table: str, *statements: str, schema: str = "public") -> Iterator[None]:
    """Run `statements` on live v2 with FK triggers off; afterwards put `table` back as it was."""
    conn = lifeos_env.connect()
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("set session_replication_role = replica")
            cur.execute(f"create temp table saved as table {schema}.{table}")
            for statement in statements:
                cur.execute(statement)
            try:
                yield
            finally:
                cur.execute(f"delete from {schema}.{table}; insert into {schema}.{table} select * from saved")
    finally:
        conn.close()


@pytest.mark.usefixtures("live_v2")
def test_every_check_passes_on_the_sample() -> None:
    outcomes, output = dbt_test("domains areas migration_rejects")
    assert {"reconcile_row_count:areas", "reconcile_ids:areas", "foreign_keys_resolve:areas"} <= outcomes.keys()
    assert {"copied_columns_match:domains", "rejects_policy"} <= outcomes.keys()
    assert failed(outcomes) == set(), output


@pytest.mark.usefixtures("live_v2")
def test_a_dropped_row_fails_row_counts_and_ids() -> None:
    with tampered("areas", "delete from public.areas where id = (select min(id::text)::uuid from public.areas)"):
        outcomes, _ = dbt_test("areas")
    assert failed(outcomes) == {"reconcile_row_count:areas", "reconcile_ids:areas"}


@pytest.mark.usefixtures("live_v2")
def test_an_orphan_fails_fk_integrity() -> None:
    orphaning = "delete from public.domains where id = (select min(domain_id::text)::uuid from public.areas)"
    with tampered("domains", orphaning):
        outcomes, _ = dbt_test("areas")
    assert failed(outcomes) == {"foreign_keys_resolve:areas"}


@pytest.mark.usefixtures("live_v2")
def test_a_changed_copied_value_fails_column_reconciliation_naming_the_column() -> None:
    with tampered("areas", "update public.areas set description = 'changed' where description is not null"):
        outcomes, _ = dbt_test("areas")
        assert failed(outcomes) == {"copied_columns_match:areas"}
        areas = next(line for line in report.build().tables if line.table == "areas")
        assert len(areas.problems) == 1 and areas.problems[0].startswith("columns: differs from v1: description (")


@pytest.mark.usefixtures("live_v2")
def test_a_reject_fails_the_build_naming_table_rule_and_count_unless_accepted() -> None:
    reject = (
        "insert into v2_work.migration_rejects (v1_table, v1_id, action, rule, detail, v1_row)"
        " select 'areas', id, 'rejected', 'orphan_fk', 'test', to_jsonb(areas) from v1.areas limit 2"
    )
    with tampered("migration_rejects", reject, schema="v2_work"):
        outcomes, output = dbt_test("rejects_policy")
        assert failed(outcomes) == {"rejects_policy"}
        assert "rejects_policy: areas: 2 v1 rows rejected by rule orphan_fk" in output
        outcomes, _ = dbt_test("rejects_policy", "{files_checked: false, accept_rejects: true}")
        assert failed(outcomes) == set()
