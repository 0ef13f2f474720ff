"""How a mart's contract becomes DDL (macros/contract_constraints.sql), on a probe
mart added to a copy of the project and run on a database of its own: the rows by
CREATE TABLE AS, then the NOT NULLs, defaults and CHECKs, then the keys. A row
that breaks the contract fails the model; a constraint the rendering does not
place stops the build instead of being dropped."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import psycopg2
import pytest
from conftest import drop_database, new_database
from dbt.cli.main import dbtRunner

import lifeos_env

PROBE_YAML = """
version: 2
models:
  - name: {name}
    description: A mart to probe the contract rendering.
{model_constraints}    columns:
      - name: id
        description: Key, named <table>_pkey as PostgreSQL names a primary key.
        data_type: integer
        constraints:
          - type: primary_key
          - type: not_null
      - name: status
        description: A checked column with a default.
        data_type: text
        constraints:
          - type: not_null
          - type: custom
            expression: default 'open'
          - type: check
            expression: "status in ('open', 'done')"
{columns}"""

CODE_UNIQUE = (
    "      - name: code\n        description: A column key.\n        data_type: integer\n"
    "        constraints:\n          - type: unique\n"
)
# each probe mart: its select, and the model-level constraints block and columns added to PROBE_YAML
PROBES = {
    "probe_unlogged": ("{{ config(unlogged=true) }} select 1 as id, 'open'::text as status", "", ""),
    "probe_null": ("select 1 as id, null::text as status", "", ""),
    "probe_lost": ("select 1 as id, 'lost'::text as status", "", ""),
    "probe_twice": ("select 1 as id, 'open'::text as status union all select 1, 'done'", "", ""),
    "probe_code": ("select 1 as id, 'open'::text as status, 2 as code", "", CODE_UNIQUE),
    "probe_not_null": (
        "select 1 as id, 'open'::text as status",
        "    constraints:\n      - type: not_null\n        columns: [id]\n",
        "",
    ),
}


@pytest.fixture(scope="module")
def run_probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], tuple[bool, str]]]:
    """A copy of the project with the probe marts added, parsed once, on a database of its own (PGDATABASE while
    the module runs): `run_probe(name)` runs `dbt run` of that probe alone and returns its success and log."""
    folder = tmp_path_factory.mktemp("contract")
    project = folder / "project"
    shutil.copytree(lifeos_env.ROOT, project, ignore=shutil.ignore_patterns(
        ".venv", ".pgdata", ".storage", ".git", "target", "logs", "out", "docs", "sample"))  # fmt: skip
    for name, (select, model_constraints, columns) in PROBES.items():
        (project / "models" / "marts" / f"{name}.sql").write_text(select + "\n")
        (project / "models" / "marts" / f"{name}.yml").write_text(
            PROBE_YAML.format(name=name, model_constraints=model_constraints, columns=columns)
        )
    paths = ["--project-dir", str(project), "--profiles-dir", str(project),
             "--target-path", str(folder / "target"), "--log-path", str(folder / "logs")]  # fmt: skip
    database = new_database()
    with lifeos_env.using_database(database):
        parsed = dbtRunner().invoke(["parse", *paths])
        assert parsed.success, parsed.exception

        def run(name: str) -> tuple[bool, str]:
            log: list[str] = []
            runner = dbtRunner(manifest=parsed.result, callbacks=[lambda event: log.append(event.info.msg)])
            return runner.invoke(["run", "--select", name, *paths]).success, "\n".join(log)

        yield run
    drop_database(database)


def test_the_contract_lands_in_the_catalog_under_its_names(run_probe: Callable[[str], tuple[bool, str]]) -> None:
    # dbt's own table options still apply to a contracted table
    success, log = run_probe("probe_unlogged")
    assert success, log[-2000:]
    with psycopg2.connect("") as conn, conn.cursor() as cur:
        cur.execute("select relpersistence from pg_class where oid = 'v2_shadow.probe_unlogged'::regclass")
        assert cur.fetchone() == ("u",)
        cur.execute("select conname from pg_constraint where conrelid = 'v2_shadow.probe_unlogged'::regclass")
        assert sorted(name for (name,) in cur.fetchall()) == ["probe_unlogged_pkey", "probe_unlogged_status_check"]
        cur.execute(
            "select attname, attnotnull, pg_get_expr(adbin, adrelid) from pg_attribute"
            " left join pg_attrdef on adrelid = attrelid and adnum = attnum"
            " where attrelid = 'v2_shadow.probe_unlogged'::regclass and attnum > 0 order by attnum"
        )
        assert cur.fetchall() == [("id", True, None), ("status", True, "'open'::text")]
    conn.close()


@pytest.mark.parametrize(
    ("probe", "error"),
    [
        ("probe_null", 'column "status" of relation "probe_null" contains null'),
        ("probe_lost", 'check constraint "probe_lost_status_check"'),
        ("probe_twice", "could not create unique index"),
    ],
)
def test_a_row_that_breaks_the_contract_fails_the_model(
    run_probe: Callable[[str], tuple[bool, str]], probe: str, error: str
) -> None:
    success, log = run_probe(probe)
    assert not success
    assert error in log
    with psycopg2.connect("") as conn, conn.cursor() as cur:
        cur.execute("select to_regclass(%s), to_regclass(%s)", (f"v2_shadow.{probe}", f"v2_shadow.{probe}__dbt_tmp"))
        assert cur.fetchone() == (None, None)
    conn.close()


@pytest.mark.parametrize(
    ("probe", "error"),
    [
        ("probe_code", "probe_code.code: column constraint unique is not rendered"),
        ("probe_not_null", "probe_not_null: model-level constraint type not_null is not rendered"),
    ],
)
def test_a_constraint_the_rendering_does_not_place_stops_the_build(
    run_probe: Callable[[str], tuple[bool, str]], probe: str, error: str
) -> None:
    success, log = run_probe(probe)
    assert not success
    assert error in log
