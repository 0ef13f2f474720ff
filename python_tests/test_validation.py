"""The validation checks fail when what they check is broken, and only those checks.

One migration: the session's `migrated_sample` (scripts/migrate --sample:
restore of the bundled Supabase dump, the files step with its manifest, dbt
build, publish), so `dbt test` validates live v2 as after a real cut-over.
Each test breaks one thing in live v2 or in what the checks read (with FK
triggers off, as a broken copy would have it), runs `dbt test` on the tables
concerned (in-process, dbt's programmatic runner), asserts the exact set of
checks that failed, and puts everything back as it was. The rejects policy
has one build of its own, of the sample with an orphaned area.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest
import yaml
from conftest import drop_database, new_database, run_dbt
from dbt.cli.main import dbtRunner

import generate_sample
import lifeos_env
import migrate
from lifeos import report
from lifeos.settings import load as load_settings


@pytest.fixture
def live_v2(migrated_sample: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The migrated sample, named by PGDATABASE for the test; live v2 is its schema public."""
    monkeypatch.setenv("PGDATABASE", migrated_sample)
    return migrated_sample


def on_live(dbt_vars: str = "{}") -> str:
    """--vars for an invocation that validates live v2 (var marts_schema names it), with `dbt_vars` (YAML)."""
    return json.dumps({"marts_schema": load_settings().v2_schema} | yaml.safe_load(dbt_vars))


def dbt_test(select: str, dbt_vars: str = "{}") -> tuple[dict[str, str], str]:
    """Run `dbt test --select` on live v2; return {check: status} and dbt's log."""
    _, outcomes, output = run_dbt("test", "--vars", on_live(dbt_vars), "--select", select)
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
def test_every_check_runs_and_passes_on_the_sample() -> None:
    outcomes, output = dbt_test("marts migration_rejects")
    checks = {check.split(":")[0] for check in outcomes}
    assert {"reconcile_row_count", "reconcile_ids", "foreign_keys_resolve", "file_blobs_verified"} <= checks
    assert {"content_hash_matches", "hierarchy_matches_v1", "copied_columns_match", "rejects_policy"} <= checks
    assert failed(outcomes) == set(), output


@pytest.mark.usefixtures("live_v2")
def test_every_unit_test_of_the_mapping_runs_and_passes() -> None:
    """scripts/migrate's build leaves the unit tests out, as dbt advises for production runs (their inputs are
    fixed, so the data cannot change their outcome); here each one declared runs and passes."""
    declared = [
        unit_test["name"]
        for model_yml in sorted((lifeos_env.ROOT / "models").rglob("*.yml"))
        for unit_test in yaml.safe_load(model_yml.read_text()).get("unit_tests", [])
    ]
    assert len(declared) >= len(list((lifeos_env.ROOT / "models" / "intermediate").glob("int_*.sql")))
    success, outcomes, output = run_dbt("test", "--resource-type", "unit_test")
    assert success, output
    assert outcomes == dict.fromkeys(declared, "pass")


@pytest.mark.usefixtures("live_v2")
def test_a_dropped_row_fails_row_counts_and_ids() -> None:
    with tampered("notes", "delete from public.notes where id = (select min(id::text)::uuid from public.notes)"):
        outcomes, _ = dbt_test("notes")
    assert failed(outcomes) == {"reconcile_row_count:notes", "reconcile_ids:notes"}


@pytest.mark.usefixtures("live_v2")
def test_an_orphan_fails_fk_integrity() -> None:
    orphaning = "delete from public.domains where id = (select min(domain_id::text)::uuid from public.areas)"
    with tampered("domains", orphaning):
        outcomes, _ = dbt_test("areas")
    assert failed(outcomes) == {"foreign_keys_resolve:areas"}


@pytest.mark.usefixtures("live_v2")
def test_a_changed_copied_value_fails_column_reconciliation_naming_the_column() -> None:
    with tampered("projects", "update public.projects set target_date = target_date + 1 where target_date is not null"):
        outcomes, _ = dbt_test("projects")
        assert failed(outcomes) == {"copied_columns_match:projects"}
        projects = next(line for line in report.build(load_settings()).tables if line.table == "projects")
    assert len(projects.problems) == 1 and projects.problems[0].startswith("columns: differs from v1: target_date (")


@pytest.mark.usefixtures("live_v2")
def test_a_tampered_note_body_fails_the_content_hash() -> None:
    tamper = "update public.notes set body = body || ' ' where id = (select min(id::text)::uuid from public.notes)"
    with tampered("notes", tamper):
        outcomes, _ = dbt_test("notes")
    assert failed(outcomes) == {"content_hash_matches:notes", "copied_columns_match:notes"}


@pytest.mark.usefixtures("live_v2")
def test_a_parent_cycle_fails_the_task_hierarchy() -> None:
    cycle = """
        update public.tasks as root set parent_id = child.id
        from public.tasks as child
        where child.parent_id = root.id
          and root.id = (select min(parent_id::text)::uuid from public.tasks where parent_id is not null)
    """
    with tampered("tasks", cycle):
        outcomes, _ = dbt_test("tasks")
    assert failed(outcomes) == {"hierarchy_matches_v1:tasks", "acyclic:tasks", "copied_columns_match:tasks"}


@pytest.mark.usefixtures("live_v2")
def test_a_missing_blob_fails_file_accessibility() -> None:
    missing = (
        "delete from lifeos_migration.file_manifest where file_id = (select min(id::text)::uuid from public.files)"
    )
    with tampered("file_manifest", missing, schema="lifeos_migration"):
        outcomes, _ = dbt_test("files")
    assert failed(outcomes) == {"file_blobs_verified:files"}


@pytest.mark.usefixtures("live_v2")
@pytest.mark.parametrize(
    ("tamper", "problem"),
    [("size_bytes = size_bytes + 1", "files: blob size "), ("md5 = md5('x')", "files: blob md5 ")],
    ids=["size", "md5"],
)
def test_a_size_or_checksum_mismatch_fails_file_accessibility(tamper: str, problem: str) -> None:
    first = "(select min(id::text)::uuid from public.files where size_bytes > 0)"
    mismatch = f"update lifeos_migration.file_manifest set {tamper} where file_id = {first}"
    with tampered("file_manifest", mismatch, schema="lifeos_migration"):
        outcomes, _ = dbt_test("files")
        assert failed(outcomes) == {"file_blobs_verified:files"}
        files = next(line for line in report.build(load_settings()).tables if line.table == "files")
    assert len(files.problems) == 1 and files.problems[0].startswith(problem)


@pytest.mark.usefixtures("live_v2")
def test_without_a_manifest_the_file_check_fails_saying_what_to_do() -> None:
    with lifeos_env.transaction() as cur:
        cur.execute("alter table lifeos_migration.file_manifest rename to file_manifest_away")
    try:
        outcomes, output = dbt_test("files")
    finally:
        with lifeos_env.transaction() as cur:
            cur.execute("alter table lifeos_migration.file_manifest_away rename to file_manifest")
    assert failed(outcomes) == {"file_blobs_verified:files"}
    assert 'file_manifest" is missing: run the files step first' in output


@pytest.fixture(scope="module")
def orphaned_area() -> Iterator[tuple[str, str, bool, dict[str, str]]]:
    """The sample with one area's domain gone (its FK dropped, as a careless dump has it), built once:
    the database, the orphaned area's id, and the build's success and checks."""
    name = new_database()
    with lifeos_env.using_database(name):
        generate_sample.main(["--schema", "v1"])
        with lifeos_env.transaction() as cur:
            cur.execute("alter table v1.areas drop constraint areas_domain_id_fkey")
            cur.execute(
                "update v1.areas set domain_id = gen_random_uuid()"
                " where id = (select min(id::text)::uuid from v1.areas) returning id::text"
            )
            orphan = cur.fetchone()[0]
        success, outcomes, _ = run_dbt("build", *migrate.NO_UNIT_TESTS, "--vars", "{files_checked: false}")
    yield name, orphan, success, outcomes
    drop_database(name)


def test_a_build_with_a_reject_fails_on_the_rejects_policy_alone(
    orphaned_area: tuple[str, str, bool, dict[str, str]],
) -> None:
    _, _, success, outcomes = orphaned_area
    assert not success
    assert failed(outcomes) == {"rejects_policy"}


def test_an_orphaned_area_is_rejected_not_dropped(orphaned_area: tuple[str, str, bool, dict[str, str]]) -> None:
    database, orphan, _, _ = orphaned_area
    conn = psycopg2.connect(dbname=database)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select v1_table, action, rule, v1_row ->> 'name' is not null from v2_work.migration_rejects"
                " where v1_id = %s",
                (orphan,),
            )
            assert cur.fetchall() == [("areas", "rejected", "orphan_fk", True)]
            cur.execute(  # its projects stay, their area_id set to NULL, as v1's ON DELETE SET NULL would
                "select distinct v1_table, action, v1_row ->> 'area_id' from v2_work.migration_rejects"
                " where v1_id <> %s and rule <> 'duplicate_deactivated'",  # the sample's repeated focus item
                (orphan,),
            )
            assert cur.fetchall() == [("projects", "adjusted", orphan)]
            cur.execute("select count(*) from v2_shadow.areas where id = %s", (orphan,))
            assert cur.fetchone() == (0,)
    finally:
        conn.close()


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
        outcomes, _ = dbt_test("rejects_policy", "{accept_rejects: true}")
        assert failed(outcomes) == set()


@pytest.mark.usefixtures("live_v2")
def test_an_adjusted_row_may_hold_null_where_v1_had_a_dangling_reference() -> None:
    nulled = (
        "update public.capture set task_id = null"
        " where id = (select min(id::text)::uuid from public.capture where task_id is not null)"
    )
    logged = (
        "insert into v2_work.migration_rejects (v1_table, v1_id, action, rule, detail, v1_row)"
        " select 'capture', id, 'adjusted', 'orphan_fk_nulled', 'test', to_jsonb(capture) from public.capture"
        " where task_id is null"
    )
    with tampered("capture", nulled):
        outcomes, _ = dbt_test("capture")
        assert failed(outcomes) == {"copied_columns_match:capture"}
        with tampered("migration_rejects", logged, schema="v2_work"):
            outcomes, _ = dbt_test("capture")
    assert failed(outcomes) == set()


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        ("reconcile_idz: {v1_table: notes}", "mart_checks_notes: no rule reconcile_idz (the rules: "),
        ("reconcile_ids: {}", "mart_checks_notes: rule reconcile_ids needs argument v1_table"),
        ("acyclic: {child_column: id}", "mart_checks_notes: rule acyclic needs argument parent_column"),
    ],
)
def test_a_rule_misnamed_or_short_of_an_argument_stops_the_parse_naming_it(
    tmp_path: Path, rule: str, error: str
) -> None:
    """A mart's YAML that names no rule, or leaves out an argument a rule cannot do without, is refused when dbt
    parses the project, in one line naming the mart's check and the rule; never a check that quietly passes."""
    project = tmp_path / "project"
    shutil.copytree(lifeos_env.ROOT, project, ignore=shutil.ignore_patterns(
        ".venv", ".pgdata", ".storage", ".git", "target", "logs", "docs", "sample"))  # fmt: skip
    notes = project / "models" / "marts" / "notes.yml"
    text = notes.read_text()
    assert "- reconcile_ids: {v1_table: notes}\n" in text
    notes.write_text(text.replace("- reconcile_ids: {v1_table: notes}\n", f"- {rule}\n"))
    paths = ["--project-dir", str(project), "--profiles-dir", str(project), "--target-path", str(tmp_path / "target")]
    parsed = dbtRunner().invoke(["parse", *paths, "--log-path", str(tmp_path / "logs")])
    assert not parsed.success
    assert error in str(parsed.exception).splitlines()[1]
