"""The run's settings, built once: dbt_project.yml's vars, the run's --vars over them, and the environment.

The command line (lifeos/command.py) builds them once, after the target is resolved (lifeos_env.ensure_target
sets PG* and, for the embedded sandbox, LIFEOS_STORAGE_ROOT and LIFEOS_BACKUP_DIR), and passes them to the
command, which hands them down: every library function that reads a var or the environment takes them as its
parameter `settings`. `load()` is for the command line and the tests.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]  # the project folder: dbt_project.yml, models/, scripts/
# Where the v2 host keeps the blobs unless LIFEOS_STORAGE_ROOT says otherwise (dbt's var storage_root agrees).
DEFAULT_STORAGE_ROOT = Path("/opt/lifeos/storage/files")
DEFAULT_BACKUP_DIR = Path("/opt/lifeos/backups")  # where pg_dump backups go unless LIFEOS_BACKUP_DIR says otherwise
ENVIRON = ("PG", "LIFEOS_", "DBT_TARGET_PATH")  # the variables the settings hold (prefixes)


@functools.cache
def project_vars() -> Mapping[str, Any]:
    """The vars dbt_project.yml declares, with their defaults."""
    return yaml.safe_load((ROOT / "dbt_project.yml").read_text())["vars"]


class Var:
    """A dbt var, read as an attribute of the settings (Settings.var)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, settings: Settings, owner: type | None = None) -> str:
        return settings.var(self.name)


@dataclass(frozen=True)
class Settings:
    """What a run reads besides its own options: dbt's vars (the project's, under the run's --vars) and the
    environment's PG*, LIFEOS_* and DBT_TARGET_PATH variables."""

    run_vars: Mapping[str, Any] = field(default_factory=dict)  # the run's --vars, passed on to dbt
    environ: Mapping[str, str] = field(default_factory=dict)  # the PG*, LIFEOS_* and DBT_TARGET_PATH variables
    v1_schema = Var()
    v2_schema = Var()
    marts_schema = Var()
    meta_schema = Var()
    storage_bucket = Var()
    orphans_folder = Var()

    def var(self, name: str) -> Any:
        """A dbt var as this run's dbt sees it: the run's value, else dbt_project.yml's default."""
        return self.run_vars[name] if name in self.run_vars else project_vars()[name]

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
    def backup_dir(self) -> Path:
        """Where the pg_dump backups and exports go: LIFEOS_BACKUP_DIR."""
        return Path(self.environ.get("LIFEOS_BACKUP_DIR") or DEFAULT_BACKUP_DIR)

    @property
    def target(self) -> Path:
        """dbt's target folder, as dbt resolves it: DBT_TARGET_PATH, else target/, in the project folder."""
        return ROOT / self.environ.get("DBT_TARGET_PATH", "target")

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
    environ = {key: value for key, value in os.environ.items() if key.startswith(ENVIRON)}
    return Settings(dict(run_vars or {}), environ)
