"""The run's settings, built once: dbt_project.yml's vars, the run's --vars over them, and the environment.

The command line (lifeos/cli.py) builds them after the target is resolved (lifeos_env.ensure_target sets PG*
and, for the embedded sandbox, LIFEOS_STORAGE_ROOT and LIFEOS_BACKUP_DIR), makes them the run's `current()`
and passes them to the command. A library function that is not handed them reads `current()`.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]  # the project folder: dbt_project.yml, models/, scripts/
# Where the v2 host keeps the blobs unless LIFEOS_STORAGE_ROOT says otherwise (dbt's var storage_root agrees).
DEFAULT_STORAGE_ROOT = Path("/opt/lifeos/storage/files")


@functools.cache
def project_vars() -> Mapping[str, Any]:
    """The vars dbt_project.yml declares, with their defaults."""
    return yaml.safe_load((ROOT / "dbt_project.yml").read_text())["vars"]


@dataclass(frozen=True)
class Settings:
    """What a run reads besides its own options: dbt's vars (the project's, under the run's --vars) and the
    environment's PG* and LIFEOS_* variables."""

    run_vars: Mapping[str, Any] = field(default_factory=dict)  # the run's --vars, passed on to dbt
    environ: Mapping[str, str] = field(default_factory=dict)  # the PG* and LIFEOS_* variables

    def var(self, name: str) -> Any:
        """A dbt var as this run's dbt sees it: the run's value, else dbt_project.yml's default."""
        return self.run_vars[name] if name in self.run_vars else project_vars()[name]

    @property
    def v1_schema(self) -> str:
        return self.var("v1_schema")

    @property
    def v2_schema(self) -> str:
        return self.var("v2_schema")

    @property
    def marts_schema(self) -> str:
        return self.var("marts_schema")

    @property
    def meta_schema(self) -> str:
        return self.var("meta_schema")

    @property
    def accept_rejects(self) -> bool:
        return bool(self.var("accept_rejects"))

    @property
    def database(self) -> str:
        return self.environ["PGDATABASE"]

    @property
    def host(self) -> str:
        return self.environ["PGHOST"]

    @property
    def storage_root(self) -> Path:
        """Where the v2 blobs live: LIFEOS_STORAGE_ROOT, which dbt's var storage_root reads too."""
        return Path(self.environ.get("LIFEOS_STORAGE_ROOT") or DEFAULT_STORAGE_ROOT).absolute()

    @property
    def app_role(self) -> str | None:
        return self.environ.get("LIFEOS_APP_ROLE") or None

    def with_vars(self, **run_vars: Any) -> Settings:
        """These settings with more of the run's --vars."""
        return replace(self, run_vars={**self.run_vars, **run_vars})

    def dbt_vars(self) -> tuple[str, ...]:
        """The `--vars` argument that gives dbt this run's vars."""
        return ("--vars", json.dumps(dict(self.run_vars)))


def load(run_vars: Mapping[str, Any] | None = None) -> Settings:
    """The settings of the environment as it is now, with the run's --vars."""
    environ = {key: value for key, value in os.environ.items() if key.startswith(("PG", "LIFEOS_"))}
    return Settings(dict(run_vars or {}), environ)


_active: list[Settings] = []  # the settings the command line made current, innermost last


def current() -> Settings:
    """The settings of the running command, or, outside one (a test calling a library function), the
    environment's now."""
    return _active[-1] if _active else load()


@contextmanager
def active(settings: Settings) -> Iterator[Settings]:
    """Make `settings` the current ones inside the block."""
    _active.append(settings)
    try:
        yield settings
    finally:
        _active.pop()
