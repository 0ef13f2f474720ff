"""How a mart's contract becomes DDL (macros/contract_constraints.sql), on a probe
mart added to a copy of the project and built into a fresh database: the rows by
CREATE TABLE AS, then the NOT NULLs, defaults and CHECKs, then the keys. A row
that breaks the contract fails the model; a constraint the rendering does not
place stops the build instead of being dropped."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psycopg2
import pytest

import lifeos_env

PROBE_YAML = """
version: 2
models:
  - name: contract_probe
    description: A mart to probe the contract rendering.
    constraints:
      - type: primary_key
        name: contract_probe_pkey
        columns: [id]
{model_constraints}    columns:
      - name: id
        description: Key.
        data_type: integer
        constraints:
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


def build_probe(
    tmp_path: Path, select: str, model_constraints: str = "", columns: str = ""
) -> subprocess.CompletedProcess[str]:
    """Copy the project, add the probe mart selecting `select` (YAML extras appended), and `dbt run` it alone."""
    project = tmp_path / "project"
    shutil.copytree(lifeos_env.ROOT, project, ignore=shutil.ignore_patterns(
        ".venv", ".pgdata", ".storage", ".git", "target", "logs", "out", "docs", "sample"))  # fmt: skip
    (project / "models" / "marts" / "contract_probe.sql").write_text(select + "\n")
    (project / "models" / "marts" / "contract_probe.yml").write_text(
        PROBE_YAML.format(model_constraints=model_constraints, columns=columns)
    )
    command = ["dbt", "run", "--select", "contract_probe", "--project-dir", str(project),
               "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")]  # fmt: skip
    return subprocess.run(command, env=os.environ | {"DBT_PROFILES_DIR": str(project)}, text=True,
                          capture_output=True)  # fmt: skip


@pytest.mark.usefixtures("fresh_database")
def test_the_contract_lands_in_the_catalog_under_its_names(tmp_path: Path) -> None:
    # dbt's own table options still apply to a contracted table
    run = build_probe(tmp_path, "{{ config(unlogged=true) }} select 1 as id, 'open'::text as status")
    assert run.returncode == 0, run.stdout[-2000:]
    with psycopg2.connect("") as conn, conn.cursor() as cur:
        cur.execute("select relpersistence from pg_class where oid = 'v2_shadow.contract_probe'::regclass")
        assert cur.fetchone() == ("u",)
        cur.execute("select conname from pg_constraint where conrelid = 'v2_shadow.contract_probe'::regclass")
        assert sorted(name for (name,) in cur.fetchall()) == ["contract_probe_pkey", "contract_probe_status_check"]
        cur.execute(
            "select attname, attnotnull, pg_get_expr(adbin, adrelid) from pg_attribute"
            " left join pg_attrdef on adrelid = attrelid and adnum = attnum"
            " where attrelid = 'v2_shadow.contract_probe'::regclass and attnum > 0 order by attnum"
        )
        assert cur.fetchall() == [("id", True, None), ("status", True, "'open'::text")]
    conn.close()


@pytest.mark.usefixtures("fresh_database")
@pytest.mark.parametrize(
    ("select", "error"),
    [
        ("select 1 as id, null::text as status", 'column "status" of relation "contract_probe__dbt_tmp" contains null'),
        ("select 1 as id, 'lost'::text as status", 'check constraint "contract_probe_status_check"'),
        ("select 1 as id, 'open'::text as status union all select 1, 'done'", "could not create unique index"),
    ],
)
def test_a_row_that_breaks_the_contract_fails_the_model(tmp_path: Path, select: str, error: str) -> None:
    run = build_probe(tmp_path, select)
    assert run.returncode == 1
    assert error in run.stdout
    with psycopg2.connect("") as conn, conn.cursor() as cur:
        cur.execute("select to_regclass('v2_shadow.contract_probe'), to_regclass('v2_shadow.contract_probe__dbt_tmp')")
        assert cur.fetchone() == (None, None)
    conn.close()


@pytest.mark.usefixtures("fresh_database")
@pytest.mark.parametrize(
    ("model_constraints", "columns", "error"),
    [
        (
            "",
            "      - name: code\n        description: A column key.\n        data_type: integer\n"
            "        constraints:\n          - type: unique\n",
            "contract_probe.code: column constraint unique is not rendered",
        ),
        (
            "      - type: not_null\n        columns: [id]\n",
            "",
            "contract_probe: model-level constraint type not_null is not rendered",
        ),
    ],
)
def test_a_constraint_the_rendering_does_not_place_stops_the_build(
    tmp_path: Path, model_constraints: str, columns: str, error: str
) -> None:
    select = "select 1 as id, 'open'::text as status" + (", 2 as code" if columns else "")
    run = build_probe(tmp_path, select, model_constraints, columns)
    assert run.returncode != 0
    assert error in run.stdout
