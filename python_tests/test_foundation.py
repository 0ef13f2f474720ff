"""The first vertical slice on a real database: domains and areas, per plan 3.1 and 3.2."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import psycopg2.extensions
import pytest
from conftest import LIVE
from dbt.cli.main import dbtRunner, dbtRunnerResult
from psycopg2 import sql

import lifeos_env
import migrate
from lifeos import dbt_runner
from lifeos.settings import ROOT, Settings

Cursor = psycopg2.extensions.cursor


def test_domains_and_areas_keep_every_row_and_uuid(sample_db: Cursor) -> None:
    for table in ("domains", "areas"):
        sample_db.execute(
            sql.SQL(
                "select count(*) from v1.{t} full join public.{t} using (id)"
                " where v1.{t}.id is null or public.{t}.id is null"
            ).format(t=sql.Identifier(table))
        )
        assert sample_db.fetchone() == (0,), table


def test_sort_order_is_10_20_30_per_scope_by_created_at_then_id(sample_db: Cursor) -> None:
    sample_db.execute(
        """
        select a.domain_id, array_agg(a.sort_order order by v.created_at, v.id)
        from public.areas a join v1.areas v using (id)
        group by a.domain_id
        """
    )
    for _, orders in sample_db.fetchall():
        assert orders == [10 * (i + 1) for i in range(len(orders))]
    sample_db.execute("select array_agg(sort_order order by created_at, id) from public.domains")
    assert sample_db.fetchone()[0] == [10, 20, 30, 40, 50]


def test_new_columns_take_the_plans_values(sample_db: Cursor) -> None:
    sample_db.execute(
        "select bool_and(updated_at = created_at and is_active and description is null and icon is null)"
        " from public.domains"
    )
    assert sample_db.fetchone() == (True,)


def test_contract_is_in_the_catalog(sample_db: Cursor) -> None:
    sample_db.execute(
        """
        select conname, pg_get_constraintdef(oid) from pg_constraint
        where conrelid = 'public.areas'::regclass order by conname
        """
    )
    assert sample_db.fetchall() == [
        ("areas_domain_id_fkey", "FOREIGN KEY (domain_id) REFERENCES domains(id) ON DELETE CASCADE"),
        ("areas_pkey", "PRIMARY KEY (id)"),
    ]
    sample_db.execute(
        "select column_name, column_default from information_schema.columns"
        " where table_schema = 'public' and table_name = 'areas' and column_default is not null order by 1"
    )
    assert dict(sample_db.fetchall()) == {
        "created_at": "now()", "id": "gen_random_uuid()", "is_active": "true",
        "sort_order": "0", "updated_at": "now()",
    }  # fmt: skip


def test_app_inserts_get_defaults_and_updates_touch_updated_at(sample_db: Cursor) -> None:
    sample_db.execute("insert into public.domains (name) values ('New') returning id, is_active, sort_order")
    new_id, is_active, sort_order = sample_db.fetchone()
    assert new_id is not None and is_active is True and sort_order == 0
    sample_db.execute("update public.areas set name = name || '!' returning updated_at > created_at")
    assert all(touched for (touched,) in sample_db.fetchall())


def marts_schema(*dbt_args: str) -> str:
    """The schema `dbt ls` resolves for the mart domains with these arguments."""
    listing = ("ls", "-s", "domains", "--resource-type", "model", "--output", "json", "--output-keys", "schema")
    result, _ = dbt_events(*listing, *dbt_args)
    (line,) = result.result
    return json.loads(line)["schema"]


def test_the_marts_schema_is_the_var_marts_schema_whatever_the_command() -> None:
    """The shadow by default; live v2 when named: the same for dbt build, test, ls and docs."""
    assert marts_schema() == "v2_shadow"
    assert marts_schema("--vars", "{marts_schema: public}") == "public"


def shadow_and_ledger() -> tuple[list[str], int]:
    """The tables of the shadow, and the rows of the ledger."""
    with lifeos_env.transaction() as cur:
        cur.execute("select table_name from information_schema.tables where table_schema = 'v2_shadow' order by 1")
        tables = [name for (name,) in cur.fetchall()]
        cur.execute("select count(*) from lifeos_migration.runs")
        return tables, cur.fetchone()[0]


def test_only_an_invocation_that_materializes_a_mart_writes_v2(
    sample_copy: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """A run of staging or int_ models leaves the shadow and the ledger alone; a run of a mart empties the shadow
    first and is recorded; and no invocation may write the marts into the live schema."""
    with lifeos_env.transaction() as cur:
        cur.execute("create schema v2_shadow; create table v2_shadow.under_review ()")
        cur.execute("select count(*) from information_schema.tables where table_schema = 'public'")
        live_tables = cur.fetchone()[0]
    before = shadow_and_ledger()
    assert before[0] == ["under_review"]
    on_live, on_shadow = (
        migrate.dbt("parse", *dbt_vars).result for dbt_vars in (("--vars", "{marts_schema: public}"), ())
    )
    migrate.dbt("run", "--select", "stg_v1__domains", "--vars", "{marts_schema: public}", manifest=on_live)
    assert shadow_and_ledger() == before
    migrate.dbt("docs", "generate", manifest=on_shadow)  # docs/docs-site.md's review of the shadow: builds no mart
    assert shadow_and_ledger() == before
    with pytest.raises(lifeos_env.MigrationError):
        migrate.dbt("run", "--select", "domains", "--vars", "{marts_schema: public}", manifest=on_live)
    refusal = "refusing to build the marts into the live schema public (var marts_schema): the build empties it first"
    assert refusal in capfd.readouterr().out
    assert shadow_and_ledger() == before
    with lifeos_env.transaction() as cur:
        cur.execute("select count(*) from information_schema.tables where table_schema = 'public'")
        assert cur.fetchone()[0] == live_tables
    migrate.dbt("run", "--select", "domains", manifest=on_shadow)
    assert shadow_and_ledger() == (["domains"], before[1] + 1)


def dbt_events(*args: str) -> tuple[dbtRunnerResult, set[str]]:
    """Invoke dbt in this process: its result, and the names of the events it fired."""
    names: set[str] = set()
    result = dbtRunner(callbacks=[lambda event: names.add(event.info.name)]).invoke(
        [*args, "--project-dir", str(lifeos_env.ROOT)]
    )
    assert result.exception is None, result.exception
    return result, names


def test_partial_parsing_reuses_the_manifest_for_the_same_vars_and_parses_again_for_others(
    published: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The saved manifest serves a second invocation with the same vars, and the marts' checks still pass with
    it; other vars parse the project again, and put the marts where they say."""
    monkeypatch.setenv("PGDATABASE", published)
    target = ("--target-path", str(tmp_path))
    marts_checks = ("test", "--select", "test_name:mart_checks", "--vars", f"{{marts_schema: {LIVE}}}")
    for reused in (False, True):  # the first finds no saved manifest
        result, events = dbt_events(*marts_checks, *target)
        assert ("PartialParsingSkipParsing" in events, "UnableToPartialParse" in events) == (reused, not reused)
        checks = [str(r.status) for r in result.result if r.node.resource_type == "test"]
        assert result.success and checks and set(checks) == {"pass"}
    listing = ("ls", "-s", "domains", "--resource-type", "model", "--output", "json", "--output-keys", "schema")
    result, events = dbt_events(*listing, *target)
    assert "UnableToPartialParse" in events
    assert [json.loads(line) for line in result.result] == [{"schema": "v2_shadow"}]


def test_a_scratch_database_is_named_while_used_and_dropped_even_on_failure() -> None:
    """lifeos_env.scratch_database and using_database: the one way scripts make and point at a throwaway database."""
    before = os.environ["PGDATABASE"]
    with pytest.raises(RuntimeError), lifeos_env.scratch_database("lifeos_test_scratch") as name:
        with lifeos_env.using_database(name), lifeos_env.transaction() as cur:
            cur.execute("select current_database()")
            assert cur.fetchone() == (name,)
        raise RuntimeError
    assert os.environ["PGDATABASE"] == before
    with lifeos_env.transaction() as cur:
        cur.execute("select count(*) from pg_database where datname = %s", (name,))
        assert cur.fetchone() == (0,)


def test_a_saved_parse_is_kept_per_vars_and_per_value_of_each_environment_variable_dbt_reads() -> None:
    """dbt parses the whole project again when its vars, its profile's connection or an environment variable
    dbt_project.yml reads differ from its saved parse's: dbt_runner keeps a saved parse per each of them, and
    DBT_ENVIRON names every variable the profile and the project read (but the password, which dbt does not
    bind a parse to)."""
    read = re.findall(r"env_var\('(\w+)'", (ROOT / "dbt_project.yml").read_text())
    read += re.findall(r"env_var\('(\w+)'", (ROOT / "profiles.yml.example").read_text())
    assert set(dbt_runner.DBT_ENVIRON) == set(read) - {"PGPASSWORD"}
    settings = Settings(environ={name: name.lower() for name in (*dbt_runner.DBT_ENVIRON, "PGPASSWORD")})

    def folder(*with_vars: str, **environ: str) -> Path:
        return dbt_runner.saved_parse(replace(settings, environ=settings.environ | environ), *with_vars)

    assert folder("--vars", "{}").parent == settings.target / "parse"
    assert folder("--vars", "{}") == folder("--vars", "{}", PGPASSWORD="other")
    assert folder("--vars", "{}") not in {folder(), folder("--vars", "{a: 1}")}
    for name in dbt_runner.DBT_ENVIRON:
        assert folder("--vars", "{}", **{name: "other"}) != folder("--vars", "{}")


def test_a_dbt_step_writes_its_whole_log_to_the_log_file_while_the_terminal_gets_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DBT_LOG_LEVEL_FILE", raising=False)
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path))
    dbt_runner.dbt("ls", "--select", "domains", "--output", "name")
    log = (tmp_path / "dbt.log").read_text()
    assert "Running with dbt=" in log and "[debug]" in log
    assert "Running with dbt=" not in capsys.readouterr().out
