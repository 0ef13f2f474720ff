"""What a restore reads: the v1 tables of the sources YAML and Storage's two, as they are named in a dump."""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from pglast import ast

import lifeos_env

SOURCES_YML = lifeos_env.ROOT / "models" / "staging" / "v1" / "_v1__sources.yml"
SAMPLE_DUMP = lifeos_env.ROOT / "sample" / "life_os_v1_backup.sql"
# The blob inventory, Supabase Storage's tables: target -> (name in schema storage, the columns the files step
# needs, the types of all the columns Supabase gives them, for dumps without DDL such as CLI data dumps).
STORAGE_TABLES = {
    "storage_buckets": ("buckets", ["id", "name"], {
        "id": "text", "name": "text", "owner": "uuid", "owner_id": "text", "public": "boolean",
        "created_at": "timestamptz", "updated_at": "timestamptz", "file_size_limit": "bigint",
        "allowed_mime_types": "text[]", "type": "text",
    }),
    "storage_objects": ("objects", ["id", "bucket_id", "name", "metadata"], {
        "id": "uuid", "bucket_id": "text", "name": "text", "owner": "uuid", "owner_id": "text",
        "created_at": "timestamptz", "updated_at": "timestamptz", "last_accessed_at": "timestamptz",
        "metadata": "jsonb", "user_metadata": "jsonb", "version": "text", "level": "integer",
    }),
}  # fmt: skip
MigrationError = lifeos_env.MigrationError


@dataclass(frozen=True)
class Table:
    """One table restored into v1: where it lives in the dump and the columns the models expect."""

    target: str  # name in the v1 schema
    schema: str  # schema in the dump
    name: str  # name in the dump
    expected: dict[str, str]  # column -> type: the columns the models need
    known: dict[str, str]  # column -> type of any column it may have, for dumps without DDL
    required: bool  # a missing table is an error (else restored empty, with a warning)

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}"


def contract() -> dict[tuple[str, str], Table]:
    """The tables to restore, keyed by (schema, name) in the dump: the sources YAML plus Storage's two."""
    source = next(s for s in yaml.safe_load(SOURCES_YML.read_text())["sources"] if s["name"] == "v1")
    columns = {t["name"]: {c["name"]: c["data_type"] for c in t["columns"]} for t in source["tables"]}
    tables = {name: Table(name, "public", name, types, types, True) for name, types in columns.items()}
    for target, (name, needed, known) in STORAGE_TABLES.items():
        expected = columns.get(target, {c: known[c] for c in needed})  # a storage table the YAML declares is required
        tables[target] = Table(target, "storage", name, expected, known | expected, target in columns)
    return {(t.schema, t.name): t for t in tables.values()}


def excerpt(text: str) -> str:
    """The start of some dump text, on one line, for an error message."""
    return "`" + " ".join(text[:400].split())[:80] + "`"


def dotted(relation: ast.RangeVar) -> str:
    return ".".join(filter(None, (relation.schemaname, relation.relname)))
