"""Which blobs go where: one move per object key the int_files rows reference, then the orphans (objects of the
bucket or the inventory no row references), each under the orphans folder, where no referenced key may be."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import lifeos_env
from lifeos.files.blobs import IN_PLACE, PLACEHOLDER, Entry, Expected, expected_from, printable
from lifeos.files.sources import Source
from lifeos.settings import Settings

WORK_SCHEMA = "v2_work"

# id, object_key, storage_path, size_bytes, reject_rule, reject_detail
FileRow = tuple[str, str | None, str | None, int | None, str | None, str | None]


def manifest_table(settings: Settings) -> str:
    """The files step's manifest table, in the durable schema (its DDL: macros/meta_schema.sql)."""
    return f"{settings.meta_schema}.file_manifest"


def read_inputs(
    settings: Settings, bucket: str
) -> tuple[list[FileRow], dict[str, Expected], dict[tuple[str, str], str]]:
    """The int_files rows; the inventory (object key -> expected size and md5); the last run's sha256 per blob."""
    with lifeos_env.transaction() as cur:
        cur.execute("select to_regclass(%s)", (f"{WORK_SCHEMA}.int_files",))
        if cur.fetchone()[0] is None:
            raise lifeos_env.MigrationError(
                f"{WORK_SCHEMA}.int_files does not exist: build it first (dbt build --select +int_files)"
            )
        cur.execute(
            "select id::text, object_key, storage_path, size_bytes, reject_rule, reject_detail"
            f" from {WORK_SCHEMA}.int_files order by id"
        )
        files = cur.fetchall()
        cur.execute("select to_regclass(%s)", (f"{settings.v1_schema}.storage_objects",))
        inventory: dict[str, Expected] = {}
        if cur.fetchone()[0] is not None:
            cur.execute(
                f"select name, metadata->>'size', metadata->>'eTag' from {settings.v1_schema}.storage_objects"
                " where bucket_id = %s",
                (bucket,),
            )
            inventory = {
                name: expected_from(size, etag)
                for name, size, etag in cur.fetchall()
                if name.rpartition("/")[2] != PLACEHOLDER
            }
        cur.execute("select to_regclass(%s)", (manifest_table(settings),))
        previous: dict[tuple[str, str], str] = {}
        if cur.fetchone()[0] is not None:
            cur.execute(
                f"select distinct object_key, local_path, sha256 from {manifest_table(settings)}"
                " where status = any(%s)",
                (list(IN_PLACE),),
            )
            previous = {(key, path): sha for key, path, sha in cur.fetchall()}
    return files, inventory, previous


def plan(source: Source, root: Path, settings: Settings, bucket: str) -> list[Entry]:
    """Every blob move: one per object key the files rows reference, then the orphans (under the orphans folder,
    var orphans_folder: int_files rejects a referenced key in it, unstorable_storage_path)."""
    files, inventory, previous = read_inputs(settings, bucket)
    orphans = settings.orphans_folder
    in_bucket = source.keys()
    entries: dict[str, Entry] = {}
    refused: list[Entry] = []
    for file_id, key, storage_path, size, reject_rule, reject_detail in files:
        if key is None:  # int_files' verdict: this storage_path never becomes a path
            refused.append(Entry([file_id], None, None, "refused", f"{reject_rule}: {reject_detail}"))
            continue
        if storage_path != str(root / key):
            raise lifeos_env.MigrationError(
                f"int_files.storage_path {storage_path!r} is not under the storage root {root}:"
                " run both with the same LIFEOS_STORAGE_ROOT"
            )
        if key in entries:
            entries[key].file_ids.append(file_id)
            continue
        expected = replace(inventory.get(key, Expected()), sha256=previous.get((key, storage_path)))
        notes = ["not in the bucket"] if key not in in_bucket else []
        notes += ["not in the storage.objects inventory"] if key not in inventory else []
        notes += [f"row rejected by {reject_rule}"] if reject_rule else []
        status = "copy" if key in in_bucket else "missing"
        entries[key] = Entry(
            [file_id],
            key,
            storage_path,
            status,
            "; ".join(notes) or None,
            expected.size or size,
            expected=expected,
            below_root=tuple(key.split("/")),
        )
    for key in sorted((in_bucket | inventory.keys()) - entries.keys()):
        path = str(root / orphans / key)
        if printable(key) != key:  # a staging folder's name the manifest (text) cannot hold
            entries[key] = Entry(
                [None],
                printable(key),
                None,
                "refused",
                "the manifest (text) cannot hold this name: not UTF-8, or a NUL",
            )
            continue
        status, detail = ("orphan", "no files row references it") if key in in_bucket else ("missing", None)
        expected = replace(inventory.get(key, Expected()), sha256=previous.get((key, path)))
        entries[key] = Entry(
            [None],
            key,
            path,
            status,
            detail or "in storage.objects only",
            expected.size,
            expected=expected,
            below_root=(orphans, *key.split("/")),
        )
    return [*entries.values(), *refused]
