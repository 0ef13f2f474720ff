"""The project's layout: one hop from a model to its docs, contract and tests (issue 19).

Each model's YAML sits beside its SQL and holds that model only, with its unit tests;
the only other YAMLs under models/ declare sources.
"""

from __future__ import annotations

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
