"""dbt in this process: one command at a time, with a progress bar of its nodes; its whole log in logs/dbt.log."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

import lifeos_env
from lifeos.console import console
from lifeos.settings import Settings

if TYPE_CHECKING:  # dbt itself is imported by the first dbt step (dbt()): commands without one start 1-2 s sooner
    from dbt.cli.main import dbtRunnerResult
    from dbt.contracts.graph.manifest import Manifest
    from dbt_common.events.base_types import EventMsg

VERBOSE = False  # scripts/migrate --verbose: dbt's log on the terminal as it runs, besides logs/dbt.log
# unit tests check the SQL with fixed inputs, not the data: CI runs them (python_tests), and
# dbt advises leaving them out of production runs
NO_UNIT_TESTS = ("--exclude-resource-type", "unit_test")
# A step whose target/manifest.json and run_results.json nobody reads (the report reads the build's): serializing
# the manifest costs a step 0.1-0.5 s.
NO_ARTIFACTS = "--no-write-json"
# The environment variables dbt_project.yml and profiles.yml.example read, but the password: dbt parses the
# project again when one of their values differs from its saved parse's (its profile's connection, its vars).
DBT_ENVIRON = ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "LIFEOS_APP_ROLE", "LIFEOS_STORAGE_ROOT")


def parse(settings: Settings, *with_vars: str) -> Manifest:
    """`dbt parse` with these `--vars` (none, or "--vars" and their JSON): the manifest for the invocations of a run.

    It starts from the saved parse of the same vars and environment (saved_parse): dbt parses the whole project
    again (2-3 s quiet, about 5 s in the suite) whenever they differ from its last saved parse's, and steps with
    other vars come between a run's (a `dbt test` on live v2, a rehearsal, the suite's builds and databases)."""
    return dbt("parse", NO_ARTIFACTS, "--target-path", str(saved_parse(settings, *with_vars)), *with_vars).result


def saved_parse(settings: Settings, *with_vars: str) -> Path:
    """The folder of dbt's saved parse (partial_parse.msgpack) for these vars and the values of DBT_ENVIRON:
    <settings' target folder>/parse/<hash of both>."""
    key = json.dumps([*with_vars, *(settings.environ.get(name, "") for name in DBT_ENVIRON)]).encode()
    return settings.target / "parse" / hashlib.sha256(key).hexdigest()[:16]


def dbt(*args: str, manifest: Manifest | None = None) -> dbtRunnerResult:
    """Run one dbt command in this process, in the project, with a progress bar of its nodes; raise when it fails.

    dbt's whole log goes to logs/dbt.log (dbt's log path). The terminal gets the bar, dbt's warnings and errors
    (a failing node's message in full) and the project's own log lines (e.g. UNMAPPED v1 columns); with
    --verbose, dbt's log as it runs. Given the `manifest` of a `dbt parse` with the same vars, dbt does not
    parse the project again. A manifest serves one build of the marts: that build rewrites each foreign key's
    `to: ref(...)` in it into the relation's name, which a second build of the marts refuses.
    """
    from dbt.cli.main import dbtRunner  # here: importing dbt takes 1-2 s, which only a command that runs it pays

    command = ["dbt", *args]
    console.print(f"[bold]$ {' '.join(command)}[/bold]")
    # The terminal's level, and the file's: every line (debug) unless DBT_LOG_LEVEL_FILE says otherwise (the
    # suite's info). dbt lowers a file level it is not given to the terminal's: `none` wrote no logs/dbt.log.
    log_level = (
        [] if VERBOSE else ["--log-level", "none", "--log-level-file", os.environ.get("DBT_LOG_LEVEL_FILE", "debug")]
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, TextColumn("{task.fields[running]}"), console=console) as progress:
        runner = dbtRunner(manifest=manifest, callbacks=[NodeProgress(progress, " ".join(command[:2]))])
        result = runner.invoke([*args, *lifeos_env.dbt_project_args(), *log_level])
    if isinstance(result.exception, lifeos_env.Interrupted):
        raise result.exception
    if not result.success:
        raise lifeos_env.MigrationError(f"`{' '.join(command)}` failed; its output above names the model or test")
    return result


class NodeProgress:
    """dbtRunner callback: one progress bar of the invocation's nodes (done out of total, the one started last
    and still running), and, but with --verbose, dbt's warnings and errors and the project's log lines."""

    def __init__(self, progress: Progress, description: str) -> None:
        self.progress = progress
        self.bar = progress.add_task(description, total=None, running="")
        self.running: dict[str, str] = {}  # unique_id -> name of each node running now, in the order they started
        self.counted: set[str] = set()  # the nodes in dbt's total that started
        self.lock = threading.Lock()  # dbt calls back from its worker threads

    def __call__(self, event: EventMsg) -> None:
        name, data = event.info.name, event.data
        if name == "LogStartLine":  # a node dbt counts (an ephemeral model is compiled into others, never run)
            with self.lock:
                self.counted.add(data.node_info.unique_id)
            self.progress.update(self.bar, total=data.total)
        elif name in ("NodeStart", "NodeFinished"):
            with self.lock:
                if name == "NodeStart":
                    self.running[data.node_info.unique_id] = data.node_info.node_name
                else:
                    self.running.pop(data.node_info.unique_id, None)
                    if data.node_info.unique_id in self.counted:
                        self.progress.advance(self.bar)
                self.progress.update(self.bar, running=next(reversed(self.running.values()), ""))
        elif not VERBOSE and shown(event):  # as dbt words it: its own warnings start with [WARNING]
            self.progress.console.print(Text.from_ansi(event.info.msg), soft_wrap=True)


def shown(event: EventMsg) -> bool:
    """Whether the terminal gets a dbt event without --verbose: a line the project logs (`log(..., info=True)`),
    a warning, or an error but for the Python stack of a stop."""
    name, level = event.info.name, event.info.level
    return name == "JinjaLogInfo" or (level in ("warn", "error") and name != "MainStackTrace")
