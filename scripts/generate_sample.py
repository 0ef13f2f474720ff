"""Write a deterministic, realistic Life OS v1 database (sample/v1_schema.sql).

Row counts at --scale 1 are the plan's upper estimates: 5 domains, 10 areas,
20 projects, 200 tasks (subtasks up to 3 deep), 50 notes, 30 links, 20 files,
100 daily_focus, 50 capture, 6 context_types and 0 reminders. --scale N
multiplies every count but context_types, a fixed lookup of six values.

Values are meant to hurt: unicode and emoji, long markdown bodies, tabs,
backslashes and newlines, NULLs where allowed, tags arrays, equal created_at
values, subtasks in another project than their parent, and every storage_path
shape v1 may hold. With --blobs-dir the file blobs are written too, laid out
as bucket object keys, so the files step has a local source to copy from.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import random
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from psycopg2 import sql

import lifeos_env
from lifeos.copy_format import ColumnValue, copy_text

SCHEMA_FILE = lifeos_env.ROOT / "sample" / "v1_schema.sql"
# v1's Supabase bucket, as the sample's files rows and storage.objects name it: a fact of the sample (the bundled
# dump holds it), the default of dbt's var storage_bucket (python_tests/test_structure.py checks that they agree).
BUCKET = "life-os-files"
SUPABASE_URL = "https://abcdefghijklmnop.supabase.co"
EPOCH = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
COPY_BATCH = 10_000  # rows per COPY in load(): a large scale's whole table as one buffer would not fit in memory
CONTEXT_TYPES = [
    ("deep_work", "Deep work", True),
    ("quick", "Quick win ⚡", True),
    ("admin", "Admin", True),
    ("errands", "Errands", True),
    ("calls", "Calls 📞", True),
    ("creative", "Creative", False),
]
DOMAIN_NAMES = ["Work", "Personal", "Sintri", "Gesundheit 🏃", "家族"]
WORDS = (
    "plan review draft ship fix call email budget garden invoice sprint café naïve "
    "résumé 東京 données über 🚀 ✅ 📎 fix-up roadmap retro backlog migrate"
).split()
Row = Sequence[ColumnValue]


class Generator:
    def __init__(self, scale: int, seed: int = 20260226) -> None:
        self.scale = scale
        self.rng = random.Random(seed)
        self.blobs: dict[str, bytes] = {}  # bucket object key -> content
        self.last_moment = EPOCH

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def moment(self, days: int = 300) -> datetime:
        # One row in five shares the previous row's moment: equal created_at values are common.
        if self.rng.random() >= 0.2:
            self.last_moment = EPOCH + timedelta(minutes=15 * self.rng.randrange(days * 96))
        return self.last_moment

    def words(self, low: int, high: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(low, high)))

    def tags(self) -> list[str] | None:
        roll = self.rng.random()
        if roll < 0.1:
            return None
        if roll < 0.3:
            return []
        return self.rng.sample(["home", "q3", "waiting-on", "tag with space", 'quo"te', "back\\slash", "🏷️"], 2)

    def maybe(self, value: ColumnValue, chance: float = 0.7) -> ColumnValue:
        return value if self.rng.random() < chance else None

    def markdown(self, index: int) -> str:
        paragraphs = [f"# Note {index}: {self.words(2, 5)}", "", "## Checklist"]
        paragraphs += [f"- [{'x' if self.rng.random() < 0.5 else ' '}] {self.words(2, 8)}" for _ in range(5)]
        paragraphs += ["", "```python", "print('tab\there', r'back\\slash')", "```", ""]
        paragraphs += [self.words(30, 80) for _ in range(self.rng.randint(2, 40))]
        paragraphs.append("| a | b |\n|---|---|\n| ✓ | ünïcödé 🎉 |\r\n")
        return "\n".join(paragraphs)

    def tables(self) -> dict[str, list[Row]]:
        n = self.scale
        rng = self.rng
        context_types = [(self.uuid(), v, label, system) for v, label, system in CONTEXT_TYPES]
        domains = [
            (
                self.uuid(),
                DOMAIN_NAMES[i % 5] + ("" if i < 5 else f" {i}"),
                self.maybe(f"#{rng.randrange(16**6):06x}"),
                EPOCH,
            )
            for i in range(5 * n)
        ]
        areas = [
            (
                self.uuid(),
                domains[i % len(domains)][0],
                f"Area {i} {self.words(1, 2)}",
                self.maybe(self.words(3, 12)),
                self.moment(),
            )
            for i in range(10 * n)
        ]
        projects = []
        for i in range(20 * n):
            area = rng.choice(areas) if rng.random() < 0.7 else None
            domain_id = area[1] if area else rng.choice(domains)[0]
            created = self.moment()
            projects.append(
                (
                    self.uuid(),
                    domain_id,
                    area[0] if area else None,
                    f"Project {i} {self.words(1, 3)}",
                    self.maybe(self.words(5, 30)),
                    rng.choice(["active", "active", "on_hold", "completed", "archived"]),
                    self.maybe(date(2026, 1, 1) + timedelta(days=rng.randrange(365)), 0.5),
                    created,
                    created + timedelta(days=rng.randrange(30)),
                )
            )
        tasks: list[Row] = []
        depth: list[int] = []
        for i in range(200 * n):
            project = rng.choice(projects) if rng.random() < 0.8 else None
            parent = None
            if i > 10 and rng.random() < 0.35:
                candidate = rng.randrange(len(tasks))
                if depth[candidate] < 3:
                    parent = candidate
            if parent is not None and rng.random() < 0.9:
                project_id, domain_id = tasks[parent][2], tasks[parent][1]
            else:
                project_id = project[0] if project else None
                domain_id = project[1] if project else rng.choice(domains)[0]
            depth.append(depth[parent] + 1 if parent is not None else 0)
            status = rng.choice(["open", "open", "in_progress", "blocked", "done", "cancelled"])
            created = self.moment()
            custom = rng.random() < 0.1
            tasks.append(
                (
                    self.uuid(),
                    domain_id,
                    project_id,
                    tasks[parent][0] if parent is not None else None,
                    f"Task {i}: {self.words(2, 7)}",
                    self.maybe("Line one\nline\ttwo \\ " + self.words(0, 40), 0.6),
                    rng.randint(1, 4),
                    status,
                    self.maybe(date(2026, 1, 1) + timedelta(days=rng.randrange(200)), 0.5),
                    self.maybe(date(2026, 3, 1) + timedelta(days=rng.randrange(200)), 0.2),
                    self.maybe(rng.choice(["FREQ=WEEKLY;BYDAY=MO", "every 2 weeks", "FREQ=DAILY"]), 0.1),
                    self.tags(),
                    "my own mode" if custom else self.maybe(rng.choice(CONTEXT_TYPES)[0], 0.6),
                    custom,
                    created,
                    created + timedelta(hours=rng.randrange(500)),
                    created + timedelta(days=3) if status == "done" else None,
                )
            )
        task_ids = [t[0] for t in tasks]

        def attachments() -> tuple[ColumnValue, ColumnValue, ColumnValue]:
            return (
                self.maybe(rng.choice(domains)[0]),
                self.maybe(rng.choice(projects)[0], 0.5),
                self.maybe(rng.choice(task_ids), 0.3),
            )

        notes = []
        for i in range(50 * n):
            created = self.moment()
            notes.append(
                (
                    self.uuid(),
                    *attachments(),
                    f"Note {i} — {self.words(1, 4)}",
                    self.maybe(self.markdown(i), 0.95),
                    rng.choice(["markdown", "markdown", "plain", "html"]),
                    self.tags(),
                    created,
                    created + timedelta(days=1),
                )
            )
        links = [
            (
                self.uuid(),
                *attachments(),
                f"Link {i} {self.words(1, 3)}",
                f"https://example.org/{quote(self.words(1, 2))}?q={i}&lang=de#frag",
                self.maybe(self.words(3, 15)),
                self.moment(),
            )
            for i in range(30 * n)
        ]
        capture = [
            (
                self.uuid(),
                f"capture {i}: {self.words(1, 20)}" + ("\nsecond line" if i % 3 == 0 else ""),
                rng.random() < 0.5,
                self.maybe(rng.choice(task_ids), 0.4),
                self.moment(),
            )
            for i in range(50 * n)
        ]
        files = [self.file_row(i, attachments(), capture) for i in range(20 * n)]
        focus = []
        day = date(2025, 6, 1)
        while len(focus) < 100 * n:
            for slot in range(1, rng.randint(1, 3) + 1):
                if len(focus) < 100 * n:
                    focus.append(
                        (
                            self.uuid(),
                            day,
                            self.maybe(rng.choice(task_ids), 0.97),
                            slot,
                            rng.random() < 0.5,
                            self.maybe(self.words(2, 8), 0.3),
                            datetime.combine(day, datetime.min.time(), UTC),
                        )
                    )
            day += timedelta(days=1)
        return {
            "context_types": context_types,
            "domains": domains,
            "areas": areas,
            "projects": projects,
            "tasks": tasks,
            "notes": notes,
            "links": links,
            "capture": capture,
            "files": files,
            "daily_focus": focus,
            "reminders": [],
        }

    def file_row(self, i: int, attached: tuple[ColumnValue, ...], capture: list[Row]) -> Row:
        file_id = self.uuid()
        original = ["report Q3.pdf", "photo 🌅.jpg", "notes.txt", "Übersicht (final).xlsx", "empty.bin"][i % 5]
        folder = ["", "2025/", "projects/alpha/", "deep/a/b/c/"][i % 4]
        key = f"{folder}{file_id}_{original}"
        shapes = [
            key,
            f"{BUCKET}/{key}",
            f"{SUPABASE_URL}/storage/v1/object/public/{BUCKET}/{quote(key)}",
            f"{SUPABASE_URL}/storage/v1/object/authenticated/{BUCKET}/{quote(key)}",
            f"{SUPABASE_URL}/storage/v1/object/sign/{BUCKET}/{quote(key)}?token=eyJhbGciOi.abc.def",
        ]
        body = blob(file_id, i)
        self.blobs[key] = body
        mime = {"pdf": "application/pdf", "jpg": "image/jpeg", "txt": "text/plain"}.get(original.rsplit(".", 1)[-1])
        created = self.moment()
        return (
            file_id,
            *attached,
            self.maybe(capture[i % len(capture)][0], 0.2),
            f"{file_id}_{original}",
            original,
            shapes[i % len(shapes)],
            mime,
            len(body),
            self.maybe(self.words(2, 10)),
            self.tags(),
            created,
            created,
        )


def blob(file_id: str, index: int) -> bytes:
    """The deterministic content of one sample file (every fifth one is empty)."""
    if index % 5 == 4:
        return b""
    seed = hashlib.sha256(file_id.encode()).digest()
    return seed * (1 + index * 37 % 400)


def write_blobs(blobs: dict[str, bytes], directory: Path) -> None:
    for key, body in blobs.items():
        target = directory / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)


def write_sample_blobs(scale: int, directory: Path) -> Path:
    """Write the blobs of the sample at `scale` into `directory`, laid out by object key; return it."""
    generator = Generator(scale)
    generator.tables()
    write_blobs(generator.blobs, directory)
    return directory


def load(schema: str, tables: dict[str, list[Row]]) -> None:
    """Create the v1 tables in `schema` (dropping an old one) and COPY the rows in."""
    ddl = SCHEMA_FILE.read_text().replace("public.", "")
    with lifeos_env.transaction() as cur:
        cur.execute(sql.SQL("drop schema if exists {0} cascade; create schema {0}").format(sql.Identifier(schema)))
        cur.execute(sql.SQL("set local search_path = {}, public").format(sql.Identifier(schema)))
        cur.execute(ddl)
        for table, rows in tables.items():
            copy = sql.SQL("copy {} from stdin").format(sql.Identifier(table)).as_string(cur)
            for start in range(0, max(len(rows), 1), COPY_BATCH):
                buffer = io.StringIO(
                    "".join("\t".join(copy_text(v) for v in row) + "\n" for row in rows[start : start + COPY_BATCH])
                )
                cur.copy_expert(copy, buffer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=1, help="multiply every row count (default 1)")
    parser.add_argument("--schema", default="public", help="schema to write the v1 tables into (default public)")
    parser.add_argument("--blobs-dir", type=Path, help="also write the file blobs here, laid out by object key")
    args = parser.parse_args(argv)
    lifeos_env.ensure_target()
    generator = Generator(args.scale)
    tables = generator.tables()
    load(args.schema, tables)
    if args.blobs_dir:
        write_blobs(generator.blobs, args.blobs_dir)
    print(
        f"sample v1 at scale {args.scale} written to schema {args.schema}: "
        + ", ".join(f"{t} {len(r)}" for t, r in tables.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
