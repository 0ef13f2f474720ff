"""The app's screens and writes on v2 at scale (issue 29), through SQLAlchemy as the app's NON-SUPERUSER role.

    PYTHONPATH=scripts:bench python bench/bench_app.py                # 1,000x: 200,000 tasks, 50,000 notes ...
    PYTHONPATH=scripts:bench python bench/bench_app.py --scale 10     # a quick look

Builds v2 from the sample v1 at --scale into a scratch database (the v2 schema as the build leaves it, every index
and trigger in place), fills the tables the app alone writes (contacts, events and attendees, time entries,
reminders, tags on items) through the app's role, then:
- screens: each query of schema/app_queries.sql as the app sends it, with the server's time (EXPLAIN ANALYZE:
  planning + execution) and the client's (SQLAlchemy round trip, rows fetched; median of --repeat), after (as
  built) and before (the indexes issue 29 added dropped, and search ranking every match, in a transaction that
  is rolled back);
- writes: 10,000 rows through SQLAlchemy executemany as the app does, with every trigger and with the tables'
  triggers disabled (in a rolled-back transaction), and their ratio (target <= 1.5x); the clock includes what
  the triggers defer to the commit (SET CONSTRAINTS ALL IMMEDIATE before it stops).
The load average of the machine is printed beside the figures. Results as markdown on stdout and in
bench/out/app.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import sqlalchemy
from psycopg2 import sql
from sqlalchemy import text
from sqlalchemy.engine import Connection

import generate_sample
import lifeos_env
import migrate
from lifeos import grants, settings

ROOT = lifeos_env.ROOT
OUT = ROOT / "bench" / "out"
SCHEMA = settings.load().marts_schema
ROWS = 10_000  # rows per write of the trigger-cost table
# the indexes issue 29 added, per screen: "before" is the screen without them
ADDED_INDEXES = ("tasks_due_date_priority_idx", "tasks_status_due_date_idx", "notes_updated_at_idx",
                 "bookmarks_updated_at_idx", "search_index_updated_at_idx")  # fmt: skip
# search before issue 29: every match ranked
RANK_EVERY_MATCH = """
select entity_type, entity_id, title, ts_rank(document, search_query(:q)) as rank
from search_index where document @@ search_query(:q) and is_active order by rank desc limit 50
"""


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def app_queries() -> dict[str, str]:
    """schema/app_queries.sql by name."""
    blocks = (ROOT / "schema" / "app_queries.sql").read_text().split("-- name: ")[1:]
    return {
        block.partition("\n")[0]: re.sub(r"^--.*\n", "", block.partition("\n")[2], flags=re.MULTILINE).strip()[:-1]
        for block in blocks
    }


def build(scale: int) -> None:
    """v1 at `scale` and v2 built from it (seeds and models: the tables with their keys, indexes and triggers)."""
    generate_sample.main(["--scale", str(scale), "--schema", settings.load().v1_schema])
    migrate.dbt("build", "--resource-type", "seed", "--resource-type", "model")


def fill(app: Connection, scale: int) -> None:
    """The tables only the app writes, set-based through the app's role (its triggers firing)."""
    n = scale
    for statement in (
        f"insert into contacts (name, email, company) select 'Contact ' || g || ' Müller', 'c' || g || '@example.org',"
        f" 'Company ' || (g % 97) from generate_series(1, {10 * n}) g",
        f"insert into calendar_events (title, location, starts_at, ends_at, domain_id) select"
        f" (array['Meeting', 'Review', 'Call', 'Workshop'])[1 + g % 4] || ' ' || g, 'Room ' || (g % 20),"
        f" now() - interval '200 days' + g * interval '1 day' * 400 / {20 * n},"
        f" now() - interval '200 days' + g * interval '1 day' * 400 / {20 * n} + interval '1 hour',"
        f" (select id from domains order by id limit 1) from generate_series(1, {20 * n}) g",
        "insert into event_attendees (calendar_event_id, contact_id)"
        " with events as (select id, row_number() over (order by id) as n from calendar_events),"
        " people as (select id, row_number() over (order by id) as n from contacts)"
        " select events.id, people.id from events cross join (values (0), (7)) as shift (k)"
        " inner join people on people.n = 1 + (events.n + shift.k) % (select count(*) from contacts)",
        "insert into time_entries (task_id, project_id, started_at, ended_at) select id, project_id,"
        " created_at, created_at + interval '25 minutes' from tasks where id::text < '8'",
        "insert into reminders (entity_type, entity_id, remind_at) select 'task', id, now() - interval '1 hour'"
        " + (random() * interval '2 days') from tasks where id::text < '2'",
        f"insert into tags (name) select 'tag ' || g from generate_series(1, {n}) g",
    ):
        app.execute(text(statement))


@contextmanager
def owner_transaction(engine: sqlalchemy.Engine) -> Iterator[Connection]:
    """A transaction of the owner, rolled back: it changes what it measures, then acts as the app's role."""
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            yield conn
        finally:
            transaction.rollback()


def timed(conn: Connection, query: str, params: dict[str, Any], repeat: int) -> tuple[float, float]:
    """Server ms (EXPLAIN ANALYZE: planning + execution) and client ms (median round trip with rows fetched)."""
    plan = conn.execute(text(f"explain (analyze, format json) {query}"), params).scalar()[0]
    server = plan["Planning Time"] + plan["Execution Time"]
    client = []
    for _ in range(repeat):
        start = time.perf_counter()
        conn.execute(text(query), params).all()
        client.append((time.perf_counter() - start) * 1000)
    return server, statistics.median(client)


def screen_params(conn: Connection) -> dict[str, Any]:
    """Values a user would send: the busiest project, domain and parent, a task with time, common words."""
    one = lambda query: conn.execute(text(query)).scalar()  # noqa: E731
    now = one("select now()")
    return {
        "project_id": one("select project_id from tasks where project_id is not null group by 1 order by count(*)"
                          " desc limit 1"),
        "domain_id": one("select domain_id from tasks group by 1 order by count(*) desc limit 1"),
        "task_id": one("select parent_id from tasks where parent_id is not null group by 1 order by count(*) desc"
                       " limit 1"),
        "folder_id": one("select folder_id from bookmarks where folder_id is not null limit 1"),
        "entity_type": "task", "entity_id": one("select entity_id from reminders limit 1"),
        "day": now.date(), "now": now, "since": now - datetime.timedelta(days=3),
        "until": now + datetime.timedelta(days=4), "status": "open", "priority": 2,
        "q": one("select word from ts_stat('select document from search_index') order by ndoc desc limit 1"),
    }  # fmt: skip


def screens(engine: sqlalchemy.Engine, role: str, repeat: int) -> list[dict[str, Any]]:
    results = []
    with engine.connect() as conn:
        params = screen_params(conn)
    for name, query in app_queries().items():
        bound = {key: params[key] for key in text(query).compile().params}
        if name == "search as you type":
            bound["q"] = params["q"][:3]
        with owner_transaction(engine) as conn:
            conn.execute(text(f"set local role {role}; set local search_path to {SCHEMA}"))
            after = timed(conn, query, bound, repeat)
        with owner_transaction(engine) as conn:
            dropped = [index for index in ADDED_INDEXES if index in query_indexes(name)]
            for index in dropped:
                conn.execute(text(f"drop index {SCHEMA}.{index}"))
            conn.execute(text(f"set local role {role}; set local search_path to {SCHEMA}"))
            before = timed(conn, RANK_EVERY_MATCH if name == "search" else query, bound, repeat)
        changed = bool(dropped) or name == "search"
        results.append({"screen": name, "before": before if changed else None, "after": after})
    return results


def query_indexes(name: str) -> list[str]:
    """The indexes a screen names in schema/app_queries.sql, plus search's candidates index."""
    block = (ROOT / "schema" / "app_queries.sql").read_text().split(f"-- name: {name}\n")[1]
    named = re.search(r"^-- index: (.*)$", block, re.MULTILINE).group(1).split(", ")
    return named + (["search_index_updated_at_idx"] if name.startswith("search") else [])


# the writes of the trigger-cost table: (table, statement, rows of parameters from the database)
def writes(conn: Connection) -> list[tuple[str, str, str, Callable[[], list[dict[str, Any]]]]]:
    domain = conn.execute(text("select id from domains order by id limit 1")).scalar()
    ids = lambda query: list(conn.execute(text(query)).scalars())  # noqa: E731
    tasks = ids(f"select id from tasks order by id limit {ROWS}")
    notes = ids(f"select id from notes order by id limit {ROWS}")
    tag = ids("select id from tags order by id limit 1")[0]
    return [
        ("task inserts", "tasks", "insert into tasks (domain_id, title, description) values (:d, :t, :b)",
         lambda: [{"d": domain, "t": f"bench task {n}", "b": "set up the marketing plan"} for n in range(ROWS)]),
        ("task inserts, one set-based statement", "tasks",
         "insert into tasks (domain_id, title, description)"
         " select :d, 'bench task ' || g, 'set up the marketing plan' from generate_series(1, 10000) g",
         lambda: [{"d": domain}]),
        ("note body updates", "notes", "update notes set body = body || ' edited' where id = :id",
         lambda: [{"id": note} for note in notes]),
        ("task sort_order-only updates", "tasks", "update tasks set sort_order = sort_order + 1 where id = :id",
         lambda: [{"id": task} for task in tasks]),
        ("entity_tags inserts", "entity_tags",
         "insert into entity_tags (tag_id, entity_type, entity_id) values (:tag, 'task', :id)",
         lambda: [{"tag": tag, "id": task} for task in tasks]),
    ]  # fmt: skip


def trigger_costs(engine: sqlalchemy.Engine, role: str) -> list[dict[str, Any]]:
    results = []
    with engine.connect() as conn:
        planned = writes(conn)
    for name, table, statement, rows in planned:
        seconds = {}
        for triggers in ("with", "without"):
            with owner_transaction(engine) as conn:
                if triggers == "without":
                    conn.execute(text(f"alter table {SCHEMA}.{table} disable trigger user"))
                conn.execute(text(f"set local role {role}; set local search_path to {SCHEMA}"))
                parameters = rows()
                start = time.perf_counter()
                conn.execute(text(statement), parameters)
                # what the triggers leave to the commit (search_index_queue_drain) runs now, inside the clock
                conn.execute(text("set constraints all immediate"))
                seconds[triggers] = time.perf_counter() - start
        results.append({"write": name, **seconds, "ratio": seconds["with"] / seconds["without"]})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5, help="client-side runs of each screen (median)")
    args = parser.parse_args(argv)
    lifeos_env.ensure_target()
    role = f"lifeos_bench_app_{uuid.uuid4().hex[:8]}"
    report: dict[str, Any] = {"scale": args.scale, "load_average_start": load_average()}
    with lifeos_env.scratch_database("lifeos_bench_app") as database, lifeos_env.using_database(database):
        start = time.perf_counter()
        build(args.scale)
        report["build_seconds"] = time.perf_counter() - start
        conn = psycopg2.connect(dbname=database)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("create role {} login nosuperuser").format(sql.Identifier(role)))
            grants.grant_app_role(cur, SCHEMA, role)
        on_v2 = {"poolclass": sqlalchemy.NullPool, "connect_args": {"options": f"-c search_path={SCHEMA}"}}
        owner = sqlalchemy.create_engine(f"postgresql+psycopg2:///{database}", **on_v2)
        app = sqlalchemy.create_engine(f"postgresql+psycopg2://{role}@/{database}", **on_v2)
        try:
            with app.begin() as app_conn:
                fill(app_conn, args.scale)
            with conn.cursor() as cur:
                cur.execute(sql.SQL("analyze"))
            report["screens"] = screens(owner, role, args.repeat)
            report["writes"] = trigger_costs(owner, role)
        finally:
            owner.dispose()
            app.dispose()
            with conn.cursor() as cur:
                cur.execute(sql.SQL("drop owned by {r}; drop role {r}").format(r=sql.Identifier(role)))
            conn.close()
    report["load_average_end"] = load_average()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "app.json").write_text(json.dumps(report, indent=2, default=str))
    print(markdown(report))
    return 0


def markdown(report: dict[str, Any]) -> str:
    ms = lambda pair: f"{pair[0]:.2f} / {pair[1]:.2f}" if pair else "unchanged"  # noqa: E731
    lines = [f"scale {report['scale']}, load average {report['load_average_start']} (start),"
             f" {report['load_average_end']} (end); build {report['build_seconds']:.0f} s", "",
             "| screen | before: server / client ms | after: server / client ms |", "| --- | --- | --- |"]  # fmt: skip
    lines += [f"| {s['screen']} | {ms(s['before'])} | {ms(s['after'])} |" for s in report["screens"]]
    lines += ["", f"| write of {ROWS:,} rows | with triggers | without | ratio |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {w['write']} | {w['with']:.2f} s | {w['without']:.2f} s | {w['ratio']:.2f} |" for w in report["writes"]
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
