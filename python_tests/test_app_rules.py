"""v2 under the app's everyday use (issue 29), through the app's NON-SUPERUSER role over SQLAlchemy: soft delete
as users mean it, one focus entry per task and day, the upsert recipe of every partial unique rule, search over
every kind of item, and concurrent writers moving tasks between trees without a deadlock."""

from __future__ import annotations

import datetime
import random
import re
import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest
import sqlalchemy.exc
import test_app
from sqlalchemy import text
from sqlalchemy.engine import Engine
from test_app import NOW, TODAY, app_engine, app_queries, db_error, insert, one

import lifeos_env

pytestmark = pytest.mark.both_servers  # the app role over TCP, query plans, concurrent writers

# the app's role and its engine (fixtures of test_app.py)
app_role = test_app.app_role
app = test_app.app

WRITERS = 8
SECONDS = 3.0


def domain_of(engine: Engine) -> uuid.UUID:
    return one(engine, "select id from domains where is_active order by id limit 1")


def tree_writer(database: str, role: str, seed: int, nodes: list[uuid.UUID], owned: list[uuid.UUID],
                domain: uuid.UUID, outcome: dict[str, Any]) -> None:  # fmt: skip
    """One app process's requests for SECONDS, each its own transaction: add a subtask under any task of the
    shared trees, or move one of the tasks this writer owns under any other. Records what it committed."""
    engine = app_engine(database, role)
    rng = random.Random(seed)
    errors: Counter[str] = Counter()
    parents: dict[uuid.UUID, uuid.UUID] = {}  # owned task -> its parent after this writer's last committed move
    added: dict[uuid.UUID, uuid.UUID] = {}  # subtask -> its parent
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        try:
            with engine.begin() as conn:
                if rng.random() < 0.4:
                    parent = rng.choice(nodes)
                    task = conn.execute(
                        text("insert into tasks (domain_id, parent_id, title) values (:d, :p, :t) returning id"),
                        {"d": domain, "p": parent, "t": f"subtask {seed} {len(added)}"},
                    ).scalar()
                    added[task] = parent
                else:
                    task, parent = rng.choice(owned), rng.choice(nodes)
                    if task == parent:
                        continue
                    conn.execute(text("update tasks set parent_id = :p where id = :id"), {"p": parent, "id": task})
                    parents[task] = parent
        except sqlalchemy.exc.DBAPIError as error:
            errors[error.orig.pgcode] += 1  # 23514: the move would close a loop; 40001: a root moved, retry
    engine.dispose()
    outcome.update(errors=errors, parents=parents, added=added)


def test_concurrent_moves_and_subtasks_never_deadlock(published: str, app_role: str, app: Engine) -> None:
    domain = domain_of(app)
    roots = [insert(app, "tasks", {"domain_id": domain, "title": f"tree {n}"}) for n in range(4)]
    nodes = list(roots)
    for n in range(4 * WRITERS):
        nodes.append(insert(app, "tasks", {"domain_id": domain, "parent_id": nodes[n % 4], "title": f"node {n}"}))
    owned = {w: nodes[4 + w :: WRITERS] for w in range(WRITERS)}  # each task is moved by one writer only
    outcomes: list[dict[str, Any]] = [{} for _ in range(WRITERS)]
    threads = [
        threading.Thread(target=tree_writer, args=(published, app_role, w, nodes, owned[w], domain, outcomes[w]))
        for w in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors = sum((outcome["errors"] for outcome in outcomes), Counter())
    assert set(errors) <= {"23514", "40001"}, errors  # no deadlock (40P01), nothing else
    print(f"{WRITERS} writers, {SECONDS} s: refused or retried {dict(errors)}")
    assert sum(len(outcome["parents"]) + len(outcome["added"]) for outcome in outcomes) > 0
    with app.connect() as conn:
        rows = conn.execute(text("select id, parent_id from tasks where id = any(:ids)"),
                            {"ids": nodes + [t for o in outcomes for t in o["added"]]})  # fmt: skip
        stored = {row.id: row.parent_id for row in rows}
        cycles = conn.execute(
            text("with recursive walk (start, node, path) as ("
                 " select id, parent_id, array[id] from tasks where parent_id is not null"
                 " union all select walk.start, tasks.parent_id, walk.path || walk.node from walk"
                 " join tasks on tasks.id = walk.node"
                 " where tasks.parent_id is not null and not walk.node = any(walk.path))"
                 " select count(*) from walk where node = start")
        ).scalar()  # fmt: skip
    assert cycles == 0
    for outcome in outcomes:  # no lost write: every subtask is there, every moved task where its last move put it
        assert {task: stored.get(task) for task in outcome["added"]} == outcome["added"]
        assert {task: stored[task] for task in outcome["parents"]} == outcome["parents"]
    index_content = "select md5(string_agg(s::text, ',' order by s.id)) from search_index s"
    kept = one(app, index_content)
    one(app, "select refresh_search_index()")
    assert one(app, index_content) == kept, "search drifted from the tasks"
    assert one(app, "select count(*) from search_index where entity_id = any(:ids)", ids=list(stored)) == len(stored)


def app_query(name: str) -> str:
    """A query of schema/app_queries.sql by its name, as the app sends it."""
    return next(query["sql"] for query in app_queries() if query["name"] == name).strip().rstrip(";")


def found(engine: Engine, words: str, query: str = "search") -> set[uuid.UUID]:
    with engine.connect() as conn:
        return {row.entity_id for row in conn.execute(text(app_query(query)), {"q": words})}


def due(engine: Engine) -> set[uuid.UUID]:
    with engine.connect() as conn:
        return set(conn.execute(text(app_query("due reminders")), {"now": NOW}).scalars())


def test_a_soft_deleted_parent_takes_its_items_out_of_search_and_reminders(app: Engine) -> None:
    word = f"w{uuid.uuid4().hex[:10]}"
    domain = insert(app, "domains", {"name": f"Home {word}"})
    area = insert(app, "areas", {"domain_id": domain, "name": f"House {word}"})
    project = insert(app, "projects", {"domain_id": domain, "area_id": area, "name": f"Roof {word}"})
    task = insert(app, "tasks", {"domain_id": domain, "project_id": project, "title": f"Tiles {word}"})
    note = insert(app, "notes", {"domain_id": domain, "project_id": project, "title": f"Quote {word}"})
    event = insert(app, "calendar_events", {"project_id": project, "title": f"Roofer {word}", "starts_at": NOW})
    reminder = insert(app, "reminders", {"entity_type": "task", "entity_id": task, "remind_at": NOW})
    items = {project, task, note, event}
    assert found(app, word) == items and reminder in due(app)
    for parent, table in ((project, "projects"), (area, "areas"), (domain, "domains")):
        one(app, f"update {table} set is_active = false where id = :id returning id", id=parent)
        assert found(app, word) == {domain, area} & items, table  # all of them out
        assert reminder not in due(app), table
        assert one(app, "select is_active from tasks where id = :id", id=task), "the item's own state is kept"
        one(app, f"update {table} set is_active = true where id = :id returning id", id=parent)
        assert found(app, word) == items and reminder in due(app), table  # restored, they are back
    one(app, "update tasks set is_active = false where id = :id returning id", id=task)
    assert reminder not in due(app)  # the item itself soft-deleted
    one(app, "delete from domains where id = :id returning id", id=domain)


def test_a_task_is_on_a_days_focus_once(app: Engine) -> None:
    task = insert(app, "tasks", {"domain_id": domain_of(app), "title": "focus once"})
    first = insert(app, "daily_focus", {"focus_date": TODAY, "task_id": task})
    with pytest.raises(sqlalchemy.exc.IntegrityError) as refused:
        insert(app, "daily_focus", {"focus_date": TODAY, "task_id": task})
    assert db_error(refused.value)[0] == "23505"
    insert(app, "daily_focus", {"focus_date": TODAY + datetime.timedelta(days=1), "task_id": task})  # another day
    one(app, "update daily_focus set is_active = false where id = :id returning id", id=first)
    insert(app, "daily_focus", {"focus_date": TODAY, "task_id": task})  # once the first is soft-deleted
    one(app, "delete from tasks where id = :id returning id", id=task)


def upsert_recipes() -> dict[str, str]:
    """The recipes of docs/app-database.md, by the index each serves."""
    page = lifeos_env.ROOT.joinpath("docs", "app-database.md").read_text()
    section = page.split("\n### Upserts under the partial unique rules\n")[1]
    block = section.split("```sql\n")[1].split("```")[0]
    return {name: body.strip() for name, body in re.findall(r"^-- (\w+).*\n((?:(?!-- ).*\n)+)", block, re.MULTILINE)}


def test_every_partial_unique_rule_has_an_upsert_recipe_that_works(app: Engine) -> None:
    recipes = upsert_recipes()
    with app.connect() as conn:
        partial_unique = set(conn.execute(text(
            "select c.relname from pg_index i join pg_class c on c.oid = i.indexrelid"
            " where i.indisunique and i.indpred is not null and c.relnamespace = current_schema()::regnamespace"
        )).scalars())  # fmt: skip
    assert set(recipes) == partial_unique
    word = uuid.uuid4().hex[:10]
    domain = domain_of(app)
    task = insert(app, "tasks", {"domain_id": domain, "title": f"upsert {word}"})
    one(app, "update time_entries set ended_at = now() where ended_at is null returning id")  # no running timer
    values = {
        "name": f"upsert {word}", "color": "#123456", "key": f"upsert.{word}", "value": '"on"', "label": "Label",
        "contact_group_id": insert(app, "contact_groups", {"name": f"g {word}"}),
        "contact_id": insert(app, "contacts", {"name": f"c {word}"}),
        "project_id": insert(app, "projects", {"domain_id": domain, "name": f"p {word}"}),
        "calendar_event_id": insert(app, "calendar_events", {"title": f"e {word}", "starts_at": NOW}),
        "tag_id": insert(app, "tags", {"name": f"t {word}"}), "note_id": insert(app, "notes", {"title": word}),
        "entity_type": "task", "entity_id": task, "task_id": task, "started_at": NOW, "focus_date": TODAY,
        "role": "owner", "response_status": "accepted", "sort_order": 1, "note": "first",
    }  # fmt: skip
    for index, recipe in recipes.items():
        statement = text(recipe)
        params = {name: values[name] for name in statement.compile().params}
        first = one(app, recipe, **params)
        again = one(app, recipe, **params)  # the same key again: the row is updated, not refused
        assert first == again, index
    one(app, "delete from tasks where id = :id returning id", id=task)


@pytest.mark.parametrize(
    ("table", "fields", "typed"),
    [
        ("calendar_events", {"title": "Team meeting {word}", "starts_at": NOW}, "meetings {word}"),
        ("contacts", {"name": "Zoë Müller {word}", "company": "Ørsted"}, "zoe muller orsted {word}"),
        ("files", {"filename": "a", "original_filename": "Budget {word}.xlsx", "storage_path": "/x"}, "budget {word}"),
        ("notes", {"title": "Headings of {word}", "body": "Café crème"}, "heading cafe {word}"),
        ("tasks", {"title": "Marketing plan {word}"}, "marketing {word}"),
    ],
)
def test_search_finds_what_people_type(app: Engine, table: str, fields: dict[str, Any], typed: str) -> None:
    """Every kind of item, words stemmed ("meetings" finds "meeting"), accents folded either way."""
    word = f"w{uuid.uuid4().hex[:10]}"
    if table == "tasks":
        fields = {**fields, "domain_id": domain_of(app)}
    item = insert(app, table, {k: v.replace("{word}", word) if isinstance(v, str) else v for k, v in fields.items()})
    assert found(app, typed.replace("{word}", word)) == {item}
    assert found(app, f"{typed.split()[0][:4]} {word[:6]}", "search as you type") == {item}  # as you type
    one(app, f"delete from {table} where id = :id returning id", id=item)


def test_a_transaction_writes_its_search_rows_once_when_it_commits(app: Engine) -> None:
    """A write only queues its items (search_index_queue); their search rows are written together at commit, or
    when the app asks for them inside the transaction; a write after that queues again, and nothing stays queued."""
    domain = domain_of(app)
    indexed = "select count(*) from search_index where entity_id = any(:ids)"
    with app.begin() as conn:
        count = lambda query, **params: conn.execute(text(query), params).scalar()  # noqa: E731
        add = "insert into tasks (domain_id, title) values (:d, :t) returning id"
        tasks = [conn.execute(text(add), {"d": domain, "t": f"queued {n}"}).scalar() for n in range(3)]
        conn.execute(text("update tasks set title = 'queued again' where id = :id"), {"id": tasks[0]})
        conn.execute(text("update tasks set sort_order = 7 where id = :id"), {"id": tasks[1]})  # no document column
        assert count(indexed, ids=tasks) == 0
        assert count("select count(*) from search_index_queue where entity_id is null") == 1  # one drain per commit
        assert count("select count(*) from search_index_queue where entity_id = any(:ids)", ids=tasks) == 4
        conn.execute(text("set constraints search_index_queue_drain immediate"))
        assert count(indexed, ids=tasks) == 3 and count("select count(*) from search_index_queue") == 0
        conn.execute(text("set constraints search_index_queue_drain deferred"))
        tasks.append(conn.execute(text(add), {"d": domain, "t": "queued last"}).scalar())
    assert one(app, indexed, ids=tasks) == 4 and one(app, "select count(*) from search_index_queue") == 0
    assert one(app, "select title from search_index where entity_id = :id", id=tasks[0]) == "queued again"
    for task in tasks:
        one(app, "delete from tasks where id = :id returning id", id=task)


def test_writes_after_the_drain_is_made_immediate_are_written_too(app: Engine) -> None:
    """The documented way to search one's own writes, SET CONSTRAINTS ... IMMEDIATE first: each later write is
    drained at its statement's end, and nothing stays queued after the commit."""
    domain = domain_of(app)
    with app.begin() as conn:
        conn.execute(text("set constraints all immediate"))
        add = "insert into tasks (domain_id, title) values (:d, :t) returning id"
        tasks = [conn.execute(text(add), {"d": domain, "t": f"immediate {n}"}).scalar() for n in range(2)]
        conn.execute(text("update tasks set title = 'immediate again' where id = :id"), {"id": tasks[0]})
        assert conn.execute(text("select count(*) from search_index_queue")).scalar() == 0
    assert one(app, "select count(*) from search_index_queue") == 0
    assert one(app, "select title from search_index where entity_id = :id", id=tasks[1]) == "immediate 1"
    assert one(app, "select title from search_index where entity_id = :id", id=tasks[0]) == "immediate again"
    for task in tasks:
        one(app, "delete from tasks where id = :id returning id", id=task)


def test_an_item_written_while_its_project_is_soft_deleted_stays_out_of_search(app: Engine) -> None:
    """Two transactions at once: one edits a note, the other soft-deletes the note's project and commits while
    the first one's commit waits on the search row: the note's search row ends inactive, as a rebuild says."""
    project = insert(app, "projects", {"domain_id": domain_of(app), "name": "Raced"})
    note = insert(app, "notes", {"project_id": project, "title": "raced note"})
    with app.connect() as editing, app.connect() as deleting:
        editing.execute(text("update notes set title = 'raced again' where id = :id"), {"id": note})
        deleting.execute(text("update projects set is_active = false where id = :id"), {"id": project})
        pid = editing.execute(text("select pg_backend_pid()")).scalar()
        committing = threading.Thread(target=editing.commit)
        committing.start()
        waiting = "select count(*) from pg_stat_activity where pid = :pid and wait_event_type = 'Lock'"
        while not one(app, waiting, pid=pid):  # the edit's commit waits on the search row the other wrote
            time.sleep(0.01)
        deleting.commit()
        committing.join()
    assert one(app, "select (title, is_active)::text from search_index where entity_id = :id", id=note) == (
        '("raced again",f)'
    )
    one(app, "delete from projects where id = :id returning id", id=project)


def test_a_write_does_not_wait_for_a_refresh(app: Engine) -> None:
    """A repair of search holds no lock the app's writes need: a task is written while a refresh is uncommitted."""
    domain = domain_of(app)
    with app.connect() as refreshing:
        refreshing.execute(text("select refresh_search_index()"))  # its transaction stays open
        with app.begin() as conn:
            conn.execute(text("set local lock_timeout = '2s'"))  # a write that waited would fail (55P03)
            task = conn.execute(
                text("insert into tasks (domain_id, title) values (:d, 'written meanwhile') returning id"),
                {"d": domain},
            ).scalar()
            conn.execute(text("update notes set title = title where id = (select id from notes order by id limit 1)"))
        refreshing.commit()
    assert one(app, "select count(*) from search_index where entity_id = :id", id=task) == 1
    one(app, "delete from tasks where id = :id returning id", id=task)
