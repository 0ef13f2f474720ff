"""Fixtures: every test runs against a real PostgreSQL server.

The server is the one the PG* variables name, or the embedded PostgreSQL 16
when PGHOST is unset (scripts/test runs the suite against both). Each fixture
database is new and is dropped afterwards.

The suite may run in several processes (pytest-xdist, `-n`): each worker runs
dbt with target and log folders of its own, and the sample is migrated once
for the whole run into a template database that every worker copies
(`create database ... template ...`) instead of migrating it again.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import psycopg2
import psycopg2.extensions
import pytest
from hypothesis import settings
from psycopg2 import sql

# Before the project's modules read them (report.TARGET): dbt writes results, manifests and logs per server
# and worker (the suites of two servers may run at once).
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
SERVER = f"port{os.environ.get('PGPORT', '5432')}" if os.environ.get("PGHOST") else "embedded"
os.environ["DBT_TARGET_PATH"] = f"target/pytest_{SERVER}_{WORKER}"
os.environ["DBT_LOG_PATH"] = str(Path(__file__).resolve().parent.parent / "logs" / f"pytest_{SERVER}_{WORKER}")
os.environ["DBT_LOG_LEVEL_FILE"] = "info"  # not every SQL statement (debug): that costs each dbt build about 8%

from dbt.cli.main import dbtRunner  # noqa: E402
from dbt.contracts.graph.manifest import Manifest  # noqa: E402

import lifeos_env  # noqa: E402
import make_supabase_dump  # noqa: E402
import migrate  # noqa: E402
from lifeos import dbt_runner, mart_checks  # noqa: E402
from lifeos.settings import load as load_settings  # noqa: E402
from lifeos_env import drop_database  # noqa: E402

# The property tests' examples: the same ones on every run and machine (derandomize; no example database
# carried between runs), so a red run is a bug to fix and never luck; no deadline, as the shared machine's load
# swings an example's time. A test's own max_examples keeps its cost within the suite's budget. Loaded before the
# test modules build their settings; `pytest --hypothesis-profile=default` explores with random examples.
settings.register_profile("suite", derandomize=True, database=None, deadline=None)
settings.load_profile("suite")


def new_database(name: str | None = None) -> str:
    """A new, empty database `name` (else a new name); a database of that name left by an earlier test is dropped
    first."""
    name = name or f"lifeos_test_{uuid.uuid4().hex[:12]}"
    drop_database(name)
    lifeos_env.create_database(name)
    return name


def on_server(statement: sql.Composable) -> None:
    """Run one statement outside any transaction, from the server's `postgres` database."""
    conn = psycopg2.connect(dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def copy_database(template: str, name: str | None = None) -> str:
    """A new database `name` (else a new name) holding a copy of `template` (no session may be connected to it
    meanwhile); a database of that name left by an earlier test is dropped first."""
    name = name or f"lifeos_test_{uuid.uuid4().hex[:12]}"
    drop_database(name)
    on_server(sql.SQL("create database {} template {}").format(*map(sql.Identifier, (name, template))))
    return name


# dbt's parse of the project for `dbt test`, per saved parse (dbt_runner.saved_parse: the vars and environment)
PARSED: dict[Path, Manifest] = {}


def run_dbt(*args: str) -> tuple[bool, dict[str, str], str]:
    """Run dbt in this process on the database PGDATABASE names: success, {check: status} of its tests, its log.

    No interpreter start-up per call; and `dbt test`, which the tests run again and again, parses the project
    once per vars and environment in a worker (dbt_runner.saved_parse): dbt's programmatic runner takes the
    manifest parsed then (the project's files do not change during a run). Every parse starts from the saved
    parse of the same vars and environment (dbt_runner.parse).
    A check is named `<generic test>:<model>`, each rule of a mart's mart_checks `<rule>:<model>` (e.g.
    reconcile_ids:areas) and so each mart's catalog_matches_contract, a singular or unit test by its name.
    """
    dbt_vars = ("--vars", args[args.index("--vars") + 1]) if "--vars" in args else ()
    settings = load_settings()
    if args[0] == "test":
        key = dbt_runner.saved_parse(settings, *dbt_vars)  # what a parse depends on besides the project's files
        if key not in PARSED:
            PARSED[key] = dbt_runner.parse(settings, *dbt_vars)
        manifest = PARSED[key]
    else:  # a build changes the manifest it is given (dbt_runner.dbt): a parse of its own, from the vars' saved one
        manifest = dbt_runner.parse(settings, *dbt_vars)
    log: list[str] = []
    run = dbtRunner(manifest=manifest, callbacks=[lambda event: log.append(event.info.msg)])
    result = run.invoke([*args, *lifeos_env.dbt_project_args()])
    assert result.exception is None, "\n".join(log)
    outcomes = {}
    for node_result in result.result:
        node = node_result.node
        if node.resource_type in ("test", "unit_test"):
            generic = getattr(node, "test_metadata", None)  # None on a singular test
            if generic and generic.name == mart_checks.TEST:
                outcomes |= rule_outcomes(node, str(node_result.status))
            elif node.name == mart_checks.CATALOG:
                outcomes |= catalog_outcomes(node, str(node_result.status))
            else:
                name = f"{generic.name}:{node.attached_node.split('.')[-1]}" if generic else node.name
                outcomes[name] = str(node_result.status)
    return result.success, outcomes, "\n".join(log)


def rule_outcomes(node: Any, status: str) -> dict[str, str]:
    """The outcome of each rule a mart_checks test ran, named `<rule>:<model>` (its failing rules from its stored
    failing rows); a rule a var switched off did not run, and is left out."""
    found = {}
    if status == "fail":
        with lifeos_env.transaction() as cur:
            found = mart_checks.problems(cur, node.relation_name)
    not_checked = node.config.meta.get("rules_not_checked", [])
    checked = mart_checks.outcomes(mart_checks.rules(node.test_metadata.kwargs), not_checked, status, set(found))
    table = node.attached_node.split(".")[-1]
    return {f"{rule}:{table}": outcome for rule, outcome in checked.items() if outcome != mart_checks.NOT_CHECKED}


def catalog_outcomes(node: Any, status: str) -> dict[str, str]:
    """The outcome of rule catalog_matches_contract on each mart its one test checked, named `<rule>:<mart>`."""
    found = {}
    if status == "fail":
        with lifeos_env.transaction() as cur:
            found = mart_checks.problems(cur, node.relation_name, by="mart")
    marts = [unique_id.split(".")[-1] for unique_id in node.depends_on.nodes]
    checked = mart_checks.outcomes(marts, (), status, set(found))
    return {f"{mart_checks.CATALOG}:{mart}": outcome for mart, outcome in checked.items()}


def pytest_configure(config: pytest.Config) -> None:
    """One id for the whole run, which pytest-xdist hands to every worker."""
    if not hasattr(config, "workerinput"):
        config.option.testrunuid = getattr(config.option, "testrunuid", None) or uuid.uuid4().hex  # no xdist: none


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order in which pytest-xdist's --dist loadfile hands out files (with --no-loadscope-reorder, else it
    hands out the files with the most tests first): the files of a long_running test first, so that a worker
    starts each at once rather than last, alone; then the files with no test on the migrated sample: while the
    first worker to need the template builds it, the other runs these instead of waiting for it."""
    long_running = {item.path for item in items if item.get_closest_marker("long_running")}
    on_the_sample = {item.path for item in items if "sample_template" in item.fixturenames}
    items.sort(key=lambda item: (item.path not in long_running, item.path in on_the_sample))


def run_id(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    return (workerinput["testrunuid"] if workerinput else config.option.testrunuid)[:12]


def template_name(config: pytest.Config, kind: str) -> str:
    return f"lifeos_{kind}_{run_id(config)}"


def worker_name(config: pytest.Config, kind: str) -> str:
    """The one name of every database or role of this `kind` that a test of this worker and run has as its own
    (unique on the server while the test has it): a run's --vars name the app's role, and dbt's saved parse is
    bound to its vars and its database (its profile holds the name), so a name of its own per test would cost each
    test's first dbt step a whole parse of the project."""
    return f"lifeos_{kind}_{run_id(config)}_{WORKER}"


def worker_database(config: pytest.Config) -> str:
    """The database a test of this worker has as its own (fresh_database, sample_copy, rebuilt, and a template
    while this worker builds it)."""
    return worker_name(config, "test")


def the_tests_own(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, make: Callable[[str], str]
) -> Iterator[str]:
    """The test's own database, made by `make` under the worker's name and named by PGDATABASE while the test
    runs; dropped after it."""
    name = make(worker_database(request.config))
    monkeypatch.setenv("PGDATABASE", name)
    yield name
    drop_database(name)


def template_lock(config: pytest.Config, kind: str) -> Path:
    """The file whose lock the workers take to build a template, or to see that it is built."""
    return Path(tempfile.gettempdir()) / f"{template_name(config, kind)}.lock"


TEMPLATES = ("template", "rebuilt")  # the run's template databases (fixtures sample_template, rebuilt_template)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """After every worker is done (in the controller, or the only process): drop the run's templates."""
    if not hasattr(session.config, "workerinput"):
        lifeos_env.ensure_target()
        for kind in TEMPLATES:
            drop_database(template_name(session.config, kind))
            template_lock(session.config, kind).unlink(missing_ok=True)


# the storage root of the template's blobs: its copies' files.storage_path point there (set by target_server)
TEMPLATE_STORAGE: dict[str, str] = {}


@pytest.fixture(scope="session", autouse=True)
def target_server(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The server under test; backups of the whole run (every worker) go to one temporary folder, blobs to one
    storage root per worker (a migration holds its root, so two workers' runs must not share one)."""
    base = tmp_path_factory.getbasetemp()
    sandbox = (base.parent if WORKER != "main" else base) / "lifeos"
    os.environ["LIFEOS_STORAGE_ROOT"] = str(sandbox / f"files_{WORKER}")
    TEMPLATE_STORAGE["LIFEOS_STORAGE_ROOT"] = str(sandbox / "files_template")
    os.environ["LIFEOS_BACKUP_DIR"] = str(sandbox / "backups")
    return lifeos_env.ensure_target()


@pytest.fixture
def fresh_database(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty database of its own, named by PGDATABASE for the test."""
    yield from the_tests_own(request, monkeypatch, new_database)


def shared_template(config: pytest.Config, kind: str, make: Callable[[], None], start_from: str | None = None) -> str:
    """A template database of the whole run, never connected to but to copy it: `make()` run once, by the first
    worker that needs it, on a new database (or a copy of `start_from`) with the template's storage root."""
    name = template_name(config, kind)
    with template_lock(config, kind).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with lifeos_env.transaction() as cur:
            cur.execute("select count(*) from pg_database where datname = %s", (name,))
            if cur.fetchone()[0]:
                return name
        mine = worker_database(config)
        building = copy_database(start_from, mine) if start_from else new_database(mine)
        try:
            with lifeos_env.using_database(building), mock.patch.dict(os.environ, TEMPLATE_STORAGE):
                make()
        except BaseException:
            drop_database(building)
            raise
        on_server(sql.SQL("alter database {} rename to {}").format(*map(sql.Identifier, (building, name))))
    return name


@pytest.fixture(scope="session")
def sample_template(request: pytest.FixtureRequest) -> str:
    """The sample migrated once by scripts/migrate (published as live v2) for the whole run."""
    return shared_template(request.config, "template", migrate_sample)


def migrate_sample() -> None:
    assert migrate.main(["--sample"]) == 0


def build(**dbt_vars: object) -> None:
    """`dbt build` as scripts/migrate runs it (no unit tests), without the files check (no files step here)."""
    with_vars = ("--vars", json.dumps({"files_checked": False} | dbt_vars))
    migrate.dbt("build", *migrate.NO_UNIT_TESTS, *with_vars, manifest=dbt_runner.parse(load_settings(), *with_vars))


@pytest.fixture(scope="session")
def rebuilt_template(request: pytest.FixtureRequest, sample_template: str) -> str:
    """The migrated sample with a second green full build of it in the shadow, ready to publish over live v2:
    the state of every test of publishing, rollback and the guard, made once for the run."""
    return shared_template(request.config, "rebuilt", build, start_from=sample_template)


@pytest.fixture
def sample_copy(request: pytest.FixtureRequest, sample_template: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A copy of the migrated sample of the test's own, named by PGDATABASE: the test may change anything."""
    yield from the_tests_own(request, monkeypatch, functools.partial(copy_database, sample_template))


@pytest.fixture(scope="session")
def migrated_sample(sample_template: str) -> Iterator[str]:
    """A copy of the migrated sample shared by the worker's tests, which only read it or put back what they change."""
    name = copy_database(sample_template)
    yield name
    drop_database(name)


@pytest.fixture
def sample_db(migrated_sample: str) -> Iterator[psycopg2.extensions.cursor]:
    """A cursor on the migrated sample, in a transaction that is rolled back."""
    conn = psycopg2.connect(dbname=migrated_sample)
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.rollback()
        conn.close()


@pytest.fixture(scope="session")
def migrated_v2_schema(migrated_sample: str) -> str:
    """The schema of the migrated sample that holds v2: the build's shadow, or live v2 once it is published."""
    conn = psycopg2.connect(dbname=migrated_sample)
    with conn, conn.cursor() as cur:
        cur.execute("select table_schema from information_schema.tables where table_name = 'search_index'")
        (schema,) = cur.fetchall()
    conn.close()
    return schema[0]


# the name a published copy's v2 schema gets; not public, so that the rename always happens
LIVE = "lifeos_live"


@pytest.fixture(scope="module")
def published(sample_template: str, migrated_v2_schema: str) -> Iterator[str]:
    """A copy of the migrated sample whose v2 schema is renamed, as publishing does, to LIVE."""
    name = copy_database(sample_template)
    conn = psycopg2.connect(dbname=name)
    with conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL("alter schema {} rename to {}").format(sql.Identifier(migrated_v2_schema), sql.Identifier(LIVE))
        )
    conn.close()
    yield name
    drop_database(name)


@pytest.fixture
def rebuilt(
    request: pytest.FixtureRequest, rebuilt_template: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A copy of the rebuilt sample of the test's own, named by PGDATABASE; backups go to tmp_path/backups."""
    monkeypatch.setenv("LIFEOS_BACKUP_DIR", str(tmp_path / "backups"))
    yield from the_tests_own(request, monkeypatch, functools.partial(copy_database, rebuilt_template))


@pytest.fixture
def supabase_v1() -> Iterator[str]:
    """A scratch database holding v1 as Supabase has it (roles, auth.users and auth.uid(), the app's
    `user_id default auth.uid()` columns, RLS, v1's own keys and CHECKs) with the rows of the bundled sample:
    the database sample/life_os_v1_backup.sql was dumped from (scripts/make_supabase_dump.py)."""
    with lifeos_env.scratch_database("lifeos_v1") as database:
        make_supabase_dump.build_source(database, 1)
        conn = psycopg2.connect(dbname=database)
        with conn, conn.cursor() as cur:  # v1's foreign keys are checked as the tables' owner, a superuser on Supabase
            cur.execute("grant usage on schema public to supabase_admin, anon, authenticated, service_role")
        conn.close()
        yield database


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The storage root of the test, for dbt's storage_root and the files step alike."""
    monkeypatch.setenv("LIFEOS_STORAGE_ROOT", str(tmp_path / "storage" / "files"))
    return tmp_path / "storage" / "files"


@pytest.fixture(scope="session")
def supabase_source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Path]]]:
    """A Supabase-like database holding the sample, and its dumps in every variant."""
    with lifeos_env.scratch_database("lifeos_test_supabase") as name:
        make_supabase_dump.build_source(name, 1)
        yield name, make_supabase_dump.write_dumps(name, tmp_path_factory.mktemp("dumps"), make_supabase_dump.VARIANTS)
