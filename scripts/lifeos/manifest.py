"""dbt's artifacts of the last invocation: target/manifest.json and target/run_results.json, one reader."""

from __future__ import annotations

import json
from pathlib import Path

import lifeos_env


def load_json(path: Path) -> dict:
    """One of dbt's JSON artifacts, or a one-line error when no dbt run wrote it."""
    if not path.exists():
        raise lifeos_env.MigrationError(f"{path} is missing: run `dbt build` (or `dbt test`) before the report")
    return json.loads(path.read_text())


def read(target: Path) -> dict:
    """The manifest of the last dbt invocation in `target` (the settings' target folder): its nodes, sources,
    disabled nodes."""
    return load_json(target / "manifest.json")
