"""The sample generator: deterministic, at the plan's upper estimates, and scalable."""

from __future__ import annotations

import hashlib

import generate_sample
from lifeos.copy_format import copy_text

PLAN_COUNTS = {
    "context_types": 6, "domains": 5, "areas": 10, "projects": 20, "tasks": 200, "notes": 50,
    "links": 30, "capture": 50, "files": 20, "daily_focus": 100, "reminders": 0,
}  # fmt: skip


def digest(tables: dict[str, list[generate_sample.Row]]) -> str:
    return hashlib.sha256(repr(sorted(tables.items())).encode()).hexdigest()


def test_counts_are_the_plans_upper_estimates() -> None:
    tables = generate_sample.Generator(scale=1).tables()
    assert {name: len(rows) for name, rows in tables.items()} == PLAN_COUNTS


def test_scale_multiplies_every_count_but_the_lookup() -> None:
    tables = generate_sample.Generator(scale=3).tables()
    expected = {name: count * 3 for name, count in PLAN_COUNTS.items()} | {"context_types": 6}
    assert {name: len(rows) for name, rows in tables.items()} == expected


def test_output_is_deterministic() -> None:
    assert digest(generate_sample.Generator(1).tables()) == digest(generate_sample.Generator(1).tables())


def test_subtasks_nest_up_to_three_deep_and_values_hurt() -> None:
    tasks = generate_sample.Generator(1).tables()["tasks"]
    parent = {row[0]: row[3] for row in tasks}

    def depth(task_id: str) -> int:
        return 0 if parent[task_id] is None else 1 + depth(str(parent[task_id]))

    assert max(depth(str(row[0])) for row in tasks) == 3
    created = [row[14] for row in tasks]
    assert len(set(created)) < len(created), "equal created_at values are part of the sample"
    assert any("\t" in str(row[5]) and "\\" in str(row[5]) for row in tasks)


def test_copy_text_escapes_what_copy_would_misread() -> None:
    assert copy_text(None) == "\\N"
    assert copy_text("") == ""
    assert copy_text("a\tb\nc\\d\re") == "a\\tb\\nc\\\\d\\re"
    assert copy_text(['x"y', "b\\s", "tab\there"]) == '{"x\\\\"y","b\\\\\\\\s","tab\\there"}'
