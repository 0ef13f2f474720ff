"""The project's layout: one hop from a model to its docs, contract and tests (issue 19).

Each model's YAML sits beside its SQL and holds that model only, with its unit tests;
the only other YAMLs under models/ declare sources.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

import lifeos_env

MODELS = lifeos_env.ROOT / "models"


def declared(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def test_every_model_has_its_own_yaml_beside_its_sql() -> None:
    for model_sql in sorted(MODELS.rglob("*.sql")):
        model_yml = model_sql.with_suffix(".yml")
        assert model_yml.exists(), f"{model_sql.relative_to(MODELS)} has no {model_yml.name} beside it"
        names = [model["name"] for model in declared(model_yml).get("models", [])]
        assert names == [model_sql.stem], f"{model_yml.relative_to(MODELS)} declares {names}"


def test_every_other_yaml_declares_sources_only() -> None:
    for path in sorted(MODELS.rglob("*.yml")):
        if not path.with_suffix(".sql").exists():
            assert set(declared(path)) <= {"version", "sources"}, f"{path.relative_to(MODELS)} is not a model's YAML"


def test_unit_tests_live_in_the_yaml_of_the_model_they_test() -> None:
    found = 0
    for path in sorted(MODELS.rglob("*.yml")):
        for unit_test in declared(path).get("unit_tests", []):
            assert unit_test["model"] == path.stem, f"unit test {unit_test['name']} is in {path.name}"
            found += 1
    assert found > 0


def plan_index() -> list[list[str]]:
    """The rows of the README's plan index table, as lists of cells."""
    readme = (lifeos_env.ROOT / "README.md").read_text()
    assert "\n## Plan index\n" in readme, "the README has no plan index"
    section = readme.split("\n## Plan index\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split(" | ") for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows[2:]]  # after the header and its rule


def test_the_plan_index_covers_every_section_of_the_plan() -> None:
    sections = {row[0] for row in plan_index()}
    assert sections >= {*(f"3.{n}" for n in range(1, 12)), "4", "5.3", "5.4", "8"}


def test_every_path_the_plan_index_names_exists() -> None:
    named = [
        token
        for row in plan_index()
        for cell in row[2:]
        for token in re.findall(r"`([^`]+)`", cell)
        if "/" in token and "<" not in token
    ]
    assert len(named) > 30
    for token in named:
        path, _, test = token.partition("::")
        assert (lifeos_env.ROOT / path).exists(), f"the plan index names {path}, which does not exist"
        if test:
            assert f"def {test}(" in (lifeos_env.ROOT / path).read_text(), f"{path} has no {test}"


def test_models_read_the_catalog_through_a_source() -> None:
    """A hard-coded information_schema or pg_catalog relation hides an input from the lineage."""
    for model_sql in sorted(MODELS.rglob("*.sql")):
        hard_coded = re.findall(r"\b(?:information_schema|pg_catalog)\.\w+", model_sql.read_text())
        assert not hard_coded, f"{model_sql.relative_to(MODELS)} reads {hard_coded} instead of a source"


def test_no_model_joins_a_source_to_a_model() -> None:
    """dbt-project-evaluator's "direct join to source": a source is read by its staging view, and every
    later model reads models only (migration_rejects takes each rejected row's v1_row from staging)."""
    for model_sql in sorted(MODELS.rglob("*.sql")):
        text = model_sql.read_text()
        both = re.search(r"\bsource\(", text) and re.search(r"\bref\(", text)
        assert not both, f"{model_sql.relative_to(MODELS)} reads a source and a model"


def test_the_meta_schema_has_one_home() -> None:
    """Every table of the durable schema (var meta_schema) is defined in macros/meta_schema.sql and nowhere else."""
    home = lifeos_env.ROOT / "macros" / "meta_schema.sql"
    defined = set(re.findall(r"create table (?:if not exists )?\{\{ meta \}\}\.(\w+)", home.read_text()))
    assert defined == {"runs", "accepted_losses", "owned_objects", "file_manifest", "changes", "carried", "conflicts"}
    for path in sorted([*(lifeos_env.ROOT / "scripts").glob("*.py"), *(lifeos_env.ROOT / "macros").glob("*.sql")]):
        if path != home:
            assert not re.search(r"create (?:table|schema) if not exists", path.read_text(), re.IGNORECASE), path.name
