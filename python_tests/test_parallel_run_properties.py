"""The parallel run as a state machine (issue 25): random sequences of the app's writes to live v2 (as its
non-superuser role), v1's writes between dumps, `--carry-forward` publishes, `--no-publish` rehearsals,
`export-changes --to-v1` applied to v1, and rollbacks, on real servers. After every carry-forward: every write
of the app's is in live v2 or in a conflict with that version, every write of v1's too, and the same dump
carried forward again changes nothing; after the export is applied, v1 holds every write of the app's that
live v2 holds, in v1's shape. Every step exits as it should: nothing raises.

A write is tracked until the other side writes the row after seeing it (v1 after the export brought it, the
app after a carry-forward did): from then on the later write is the one to find. Each step costs a dbt
build, so the machine runs once, derandomized (the same sequence every time), on the suite's template."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from psycopg2 import sql
from sqlalchemy import text
from test_carry_forward import LEAF, Source, app_engine, app_role, conflicts, live_v2, source  # noqa: F401

import lifeos_env
import migrate
import publish
from lifeos import backups, catalog, guard, runs
from lifeos.settings import load as load_settings

DELETED = "deleted"  # a tracked write that deleted the row
TITLES = st.sampled_from(["alpha", "beta", "gamma", "it's", "zeta"])


class ParallelRun(RuleBasedStateMachine):
    """v1 (a Supabase-shaped database) and live v2 side by side, as in plan 8."""

    def __init__(self, v1: Source, role: str, folder: Path) -> None:
        super().__init__()
        self.source, self.role, self.folder = v1, role, folder
        self.app: dict[str, object] = {}  # task id -> the app's last write to it (a title, or DELETED)
        self.v1: dict[str, object] = {}  # task id -> v1's last write to it
        self.dump: Path | None = None  # the dump of the last carry-forward
        self.live_is_last_build = True  # live v2 is the last build's (the export compares with its v1)

    def live_tasks(self) -> dict[str, str]:
        with lifeos_env.transaction() as cur:
            cur.execute("select id::text, title from tasks")
            return dict(cur.fetchall())

    def v1_tasks(self) -> dict[str, str]:
        return dict(self.source.execute("select id::text, title from tasks"))

    def pick(self, rows: list[str], index: int) -> str | None:
        return sorted(rows)[index % len(rows)] if rows else None

    def leaves(self) -> list[str]:
        with lifeos_env.transaction() as cur:
            cur.execute(f"select id::text from tasks t where {LEAF}")
            return [row_id for (row_id,) in cur.fetchall()]

    def app_wrote(self, row_id: str, value: object) -> None:
        if row_id in self.v1 and self.live_tasks().get(row_id) == self.v1[row_id]:
            del self.v1[row_id]  # the app saw v1's write: its own is the one to find now
        self.app[row_id] = value

    def v1_wrote(self, row_id: str, value: object) -> None:
        if row_id in self.app and self.v1_tasks().get(row_id, DELETED) == self.app[row_id]:
            del self.app[row_id]  # v1 had the app's write (the export brought it)
        self.v1[row_id] = value

    @rule(title=TITLES, index=st.integers(0, 1000))
    def app_inserts(self, title: str, index: int) -> None:
        with app_engine(self.role).begin() as conn:
            domains = [str(d) for (d,) in conn.execute(text("select id from domains")).all()]
            row_id = conn.execute(
                text("insert into tasks (domain_id, title) values (:d, :t) returning id"),
                {"d": self.pick(domains, index), "t": title},
            ).scalar_one()
        self.app_wrote(str(row_id), title)

    @rule(title=TITLES, index=st.integers(0, 1000))
    def app_updates(self, title: str, index: int) -> None:
        row_id = self.pick(list(self.live_tasks()), index)
        self.app_wrote(row_id, f"app {title}")
        with app_engine(self.role).begin() as conn:
            conn.execute(text("update tasks set title = :t where id = :i"), {"t": f"app {title}", "i": row_id})

    @rule(index=st.integers(0, 1000), hard=st.booleans())
    def app_deletes(self, index: int, hard: bool) -> None:
        row_id = self.pick(self.leaves(), index)
        if row_id is None:
            return
        title = self.live_tasks()[row_id]
        self.app_wrote(row_id, DELETED if hard else title)
        statement = "delete from tasks where id = :i" if hard else "update tasks set is_active = false where id = :i"
        with app_engine(self.role).begin() as conn:
            conn.execute(text(statement), {"i": row_id})

    @rule(title=TITLES, index=st.integers(0, 1000), kind=st.sampled_from(["insert", "update", "delete first"]))
    def v1_writes(self, title: str, index: int, kind: str) -> None:
        if kind == "insert":
            domains = [d for (d,) in self.source.execute("select id::text from domains")]
            ((row_id,),) = self.source.execute(
                "insert into tasks (domain_id, title) values (%s, %s) returning id::text",
                (self.pick(domains, index), f"v1 {title}"),
            )
            self.v1_wrote(row_id, f"v1 {title}")
        elif kind == "update":
            row_id = self.pick(list(self.v1_tasks()), index)
            self.v1_wrote(row_id, f"v1 {title}")
            self.source.execute(
                "update tasks set title = %s, updated_at = now() where id = %s", (f"v1 {title}", row_id)
            )
        else:  # the first task of a project: the build renumbers the sort_order of every later sibling
            firsts = self.source.execute(
                "select id::text from tasks t where parent_id is null and created_at = (select min(created_at)"
                " from tasks s where s.project_id = t.project_id and s.parent_id is null)"
            )
            row_id = self.pick([first for (first,) in firsts], index)
            if row_id:
                self.v1_wrote(row_id, DELETED)
                self.source.execute("delete from tasks where id = %s", (row_id,))

    @rule()
    def carry_forward(self) -> None:
        self.dump = self.source.dump(self.folder / uuid.uuid4().hex)
        assert self.run_migrate("--carry-forward") == 0
        self.live_is_last_build = True
        self.check_every_write()
        before, recorded = live_v2(), conflicts()
        assert self.run_migrate("--carry-forward") == 0  # the same dump again: a no-op
        assert (live_v2(), conflicts()) == (before, recorded)

    @rule()
    def rehearsal(self) -> None:
        before = live_v2()
        self.dump = self.source.dump(self.folder / uuid.uuid4().hex)
        assert self.run_migrate("--no-publish") == 0
        assert live_v2() == before
        self.live_is_last_build = False

    @rule()
    def export_to_v1(self) -> None:
        out = self.folder / uuid.uuid4().hex
        exported = publish.main(["export-changes", "--to-v1", "--out", str(out)])
        if not self.live_is_last_build:  # against a later v1, v1's changes would look like the app's: refused
            assert exported == 1
            return
        assert exported == 0
        applied = subprocess.run(
            [lifeos_env.pg_client("psql"), "-X", "-q", "-d", self.source.database, "-f", str(out / "to_v1.sql")],
            capture_output=True, text=True,
        )  # fmt: skip
        assert applied.returncode == 0, applied.stderr
        v1, live = self.v1_tasks(), self.live_tasks()  # v1 holds each write of the app's live v2 holds
        for row_id, value in self.app.items():
            if live.get(row_id, DELETED) == value:
                assert v1.get(row_id, DELETED) == value, row_id

    @rule()
    def rollback(self) -> None:
        with lifeos_env.transaction() as cur:
            kept = catalog.schemas_like(cur, backups.BACKUP_PREFIX)
            unsaved = guard.app_changes(cur, load_settings(), "public")
        if not kept:
            return
        assert publish.main(["rollback"]) == (1 if unsaved else 0)  # the guard keeps the app's writes
        self.live_is_last_build = self.live_is_last_build and bool(unsaved)

    def run_migrate(self, *options: str) -> int:
        arguments = ["--dump", str(self.dump), "--files-from", str(self.source.bucket), "--app-role", self.role]
        return migrate.main([*arguments, "--allow-shrink", *options])

    def check_every_write(self) -> None:
        live = self.live_tasks()
        with lifeos_env.transaction() as cur:
            cur.execute(
                "select row_id, coalesce(app_version ->> 'title', %s), coalesce(v1_version ->> 'title', %s)"
                " from lifeos_migration.conflicts where table_name = 'tasks'",
                (DELETED, DELETED),
            )
            recorded = cur.fetchall()
        for side, writes, version in (("app", self.app, 1), ("v1", self.v1, 2)):
            for row_id, value in writes.items():
                kept = any(conflict[0] == row_id and conflict[version] == value for conflict in recorded)
                assert live.get(row_id, DELETED) == value or kept, f"{side}'s write of {row_id} ({value}) is lost"

    @invariant()
    def nothing_is_building(self) -> None:
        with lifeos_env.transaction() as cur:
            cur.execute(
                sql.SQL("select count(*) from {} where result = 'building'").format(runs.meta(load_settings(), "runs"))
            )
            assert cur.fetchone() == (0,)


def test_the_parallel_run_keeps_every_write_of_both_sides(
    sample_copy: str,
    app_role: str,  # noqa: F811
    source: Source,  # noqa: F811
    tmp_path: Path,
) -> None:
    run_state_machine_as_test(
        lambda: ParallelRun(source, app_role, tmp_path),
        settings=settings(
            max_examples=1, stateful_step_count=6, deadline=None, derandomize=True, database=None,
            phases=[Phase.generate], suppress_health_check=list(HealthCheck),
        ),
    )  # fmt: skip


pytestmark = [
    pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning"),
    pytest.mark.long_running,
]
