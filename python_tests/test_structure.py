"""The project's layout: one hop from a model to its docs, contract and tests (issue 19), and Python by
concern (issue 28).

Each model's YAML sits beside its SQL and holds that model only, with its unit tests;
the only other YAMLs under models/ declare sources. Every macro has a description. The Python in scripts/ and
its package scripts/lifeos/ is one module per concern, none too long, with an import graph without cycles in
which no library module imports a command.
"""

from __future__ import annotations

import ast
import graphlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from dbt.cli.main import dbtRunner

import generate_sample
import lifeos_env
from lifeos import cli, settings

MODELS = lifeos_env.ROOT / "models"
SCRIPTS = lifeos_env.ROOT / "scripts"
LONGEST_MODULE = 500  # lines
README_LINES = 200


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
    """The rows of the plan index table (docs/plan-index.md), as lists of cells."""
    page = (lifeos_env.ROOT / "docs" / "plan-index.md").read_text()
    assert page.startswith("# Plan index\n"), "docs/plan-index.md is not the plan index"
    rows = [line.strip("|").split(" | ") for line in page.splitlines() if line.startswith("| ")]
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


def heading_anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a Markdown page's headings (outside code blocks)."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    headings = re.findall(r"^#+ (.+)$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


# where the README says the migration plan lies: ../shared/spec/ beside the checkout
PLAN_BESIDE_CHECKOUT = lifeos_env.ROOT.parent / "shared" / "spec" / "life_os_v2_data_migration_plan.txt"


def test_the_readme_is_a_front_door_whose_links_resolve() -> None:
    """README.md stays short (issue 28: the rest is in docs/), and every relative link of it and of the docs/
    pages names a file that exists and, with a #fragment, a heading of that file; the one link out of the
    repository is the migration plan's, beside the checkout."""
    readme = lifeos_env.ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= README_LINES
    pages = [readme, *sorted((lifeos_env.ROOT / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, fragment = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.is_relative_to(lifeos_env.ROOT):  # the plan, beside the checkout (README), not in it
                assert linked == PLAN_BESIDE_CHECKOUT, f"{page.name} links to {target}, outside the repository"
                continue
            assert linked.exists(), f"{page.name} links to {target}, which does not exist"
            if fragment:
                assert fragment in heading_anchors(linked), f"{page.name} links to {target}: no such heading"


def test_models_read_the_catalog_through_a_source() -> None:
    """A hard-coded information_schema or pg_catalog relation hides an input from the lineage."""
    for model_sql in sorted(MODELS.rglob("*.sql")):
        hard_coded = re.findall(r"\b(?:information_schema|pg_catalog)\.\w+", model_sql.read_text())
        assert not hard_coded, f"{model_sql.relative_to(MODELS)} reads {hard_coded} instead of a source"


@pytest.fixture(scope="module")
def lineage() -> dict[str, list[str]]:
    """Each model's file (under models/) -> the nodes it reads, from dbt's parse: it sees a source() or ref()
    inside a macro the model calls too, which a search of the model's text misses."""
    parsed = dbtRunner().invoke(["parse", *lifeos_env.dbt_project_args()])
    assert parsed.success, parsed.exception
    return {
        node.original_file_path.removeprefix("models/"): node.depends_on.nodes
        for node in parsed.result.nodes.values()
        if node.resource_type == "model"
    }


def test_no_model_joins_a_source_to_a_model(lineage: dict[str, list[str]]) -> None:
    """dbt-project-evaluator's "direct join to source": a source is read by its staging view, and every
    later model reads models only (migration_rejects takes each rejected row's v1_row from staging)."""
    assert "intermediate/int_files.sql" in lineage
    for path, nodes in lineage.items():
        sources = [node for node in nodes if node.startswith("source.")]
        models = [node for node in nodes if node.startswith("model.")]
        assert not (sources and models), f"{path} reads {sources} and {models}"
        if path.startswith(("intermediate/", "marts/")):
            assert not sources, f"{path} reads {sources}, not its staging view"


def test_the_meta_schema_has_one_home() -> None:
    """Every table of the durable schema (var meta_schema) is defined in macros/meta_schema.sql and nowhere else."""
    home = lifeos_env.ROOT / "macros" / "meta_schema.sql"
    defined = set(re.findall(r"create table (?:if not exists )?\{\{ meta \}\}\.(\w+)", home.read_text()))
    assert defined == {"runs", "accepted_losses", "owned_objects", "file_manifest", "changes", "carried", "conflicts"}
    for path in sorted([*(lifeos_env.ROOT / "scripts").glob("*.py"), *(lifeos_env.ROOT / "macros").glob("*.sql")]):
        if path != home:
            assert not re.search(r"create (?:table|schema) if not exists", path.read_text(), re.IGNORECASE), path.name


def python_modules() -> dict[str, Path]:
    """Module name -> file of every module in scripts/ and the package scripts/lifeos/ (its subpackages too)."""
    found = {path.stem: path for path in SCRIPTS.glob("*.py")}
    for path in (SCRIPTS / "lifeos").rglob("*.py"):
        parts = path.relative_to(SCRIPTS).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the project's modules it imports."""
    modules = python_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        graph[name] = imported & set(modules)
    return graph


def command_modules(graph: dict[str, set[str]]) -> set[str]:
    """The command line (lifeos/cli.py), the command modules it gathers, and the developer tools run as scripts
    (generate_sample, make_supabase_dump). lifeos_env is a library: run as a script it prints its PG* exports."""
    scripts = {name for name, path in python_modules().items() if '\nif __name__ == "__main__":' in path.read_text()}
    gathered = {name for name in graph["lifeos.cli"] if name.split(".")[0] != "lifeos"}
    return {"lifeos.cli", *gathered, *scripts} - {"lifeos_env"}


def test_no_python_module_is_too_long() -> None:
    for path in python_modules().values():
        lines = len(path.read_text().splitlines())
        assert lines <= LONGEST_MODULE, f"{path.relative_to(lifeos_env.ROOT)} has {lines} lines: split it"


def test_no_library_module_imports_a_command_module() -> None:
    graph = import_graph()
    commands = command_modules(graph)
    assert {"migrate", "publish", "report", "export_ddl"} <= commands
    for name, imported in sorted(graph.items()):
        if name not in commands:
            assert not imported & commands, f"{name} imports the command modules {sorted(imported & commands)}"


def test_the_import_graph_has_no_cycles() -> None:
    graph = import_graph()
    assert sum(map(len, graph.values())) > 50
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as cycle:
        raise AssertionError(f"import cycle: {' -> '.join(cycle.args[1])}") from None


def test_every_macro_has_a_description() -> None:
    """dbt docs and dbt-score show them; each macro's Jinja comment says the rest."""
    defined = {  # dbt's names: test_<name>, materialization_<name>_<adapter>
        {"test": f"test_{name}", "materialization": f"materialization_{name}_{adapter}"}.get(kind, name)
        for path in [*(lifeos_env.ROOT / "macros").glob("*.sql"), *(lifeos_env.ROOT / "tests").rglob("*.sql")]
        for kind, name, adapter in re.findall(
            r"\{%-?\s*(macro|test|materialization)\s+(\w+)\s*(?:\(|,\s*(?:adapter\s*=\s*)?['\"]?(\w+))",
            path.read_text(),
        )
    }
    described = {
        macro["name"]
        for path in [*(lifeos_env.ROOT / "macros").glob("*.yml"), *(lifeos_env.ROOT / "tests").glob("*.yml")]
        for macro in declared(path).get("macros", [])
        if macro.get("description", "").strip()
    }
    assert len(defined) > 60
    assert defined <= described, f"macros without a description: {sorted(defined - described)}"
    assert described <= defined, f"descriptions of macros that do not exist: {sorted(described - defined)}"


def test_one_command_line_has_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    """`lifeos --help` lists each command once, and every command module's is among them."""
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    assert re.findall(r"^    (\S+)", capsys.readouterr().out, re.MULTILINE) == [
        "migrate", "publish", "rollback", "export-changes", "cleanup", "restore-backup", "resolve", "report",
        "restore-v1", "move-files", "export-ddl",
    ]  # fmt: skip


def test_the_run_s_vars_override_the_project_s_and_reach_dbt() -> None:
    run = settings.load({"marts_schema": "v2_review"}).with_vars(accept_rejects=True)
    assert (run.marts_schema, run.accept_rejects, run.v1_schema) == ("v2_review", True, "v1")
    assert json.loads(run.dbt_vars()[1]) == {"marts_schema": "v2_review", "accept_rejects": True}
    assert settings.load().marts_schema == "v2_shadow"


def test_the_sample_s_bucket_is_the_one_dbt_reads_by_default() -> None:
    """The sample names v1's bucket itself (its dump holds it); the migration reads the bucket dbt's var names."""
    assert generate_sample.BUCKET == settings.project_vars()["storage_bucket"]
