"""The files step: plan, move every blob, write the manifest; and its command line (scripts/move_files.py).

    python scripts/move_files.py --files-from DIR|supabase --storage-root DIR [--dry-run]

`supabase` reads the bucket with SUPABASE_URL and SUPABASE_SERVICE_KEY from the environment.
A failed blob makes the step fail; re-run it.
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

import lifeos_env
import run_lock
from lifeos.console import console
from lifeos.files.blobs import IN_PLACE, Entry
from lifeos.files.bucket import SupabaseSource
from lifeos.files.manifest import print_entries, say, write_manifest
from lifeos.files.plan import plan
from lifeos.files.sources import LocalSource, Source
from lifeos.files.transfer import DEFAULT_LIMITS, Limits, Mover
from lifeos.files.tree import make_writable
from lifeos.settings import Settings
from lifeos.settings import load as load_settings

DEFAULT_MANIFEST = lifeos_env.ROOT / "target" / "file_manifest.json"


def move(
    source: Source,
    root: Path,
    settings: Settings,
    *,
    bucket: str | None = None,
    dry_run: bool = False,
    manifest_json: Path = DEFAULT_MANIFEST,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Entry]:
    """The files step: plan, move every blob, write the manifest; raise when a blob could not be moved. The
    inventory is read for `bucket`, by default the settings' (var storage_bucket)."""
    root = Path(os.path.abspath(root))
    bucket = bucket or settings.storage_bucket
    if dry_run:
        entries = plan(source, root, settings, bucket)
        print_entries(f"plan: {len(entries)} blobs into {root} (dry run, nothing copied)", entries)
        return entries
    make_writable(root)
    entries = plan(source, root, settings, bucket)
    to_move = [e for e in entries if e.status in ("copy", "orphan")]
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, TimeRemainingColumn(), console=console) as progress:
        mover = Mover(source, root, progress, limits)
        mover.tree.sweep({e.below_root[:-1] for e in to_move})
        total = sum(e.size_bytes or 0 for e in to_move)  # planned sizes: the inventory's, else files.size_bytes
        progress.update(mover.bar, total=total, description=f"{len(to_move)} blobs")
        with ThreadPoolExecutor(max_workers=limits.concurrency) as pool:
            moved = {id(e): done for e, done in zip(to_move, pool.map(mover.move, to_move), strict=True)}
            entries = [moved.get(id(e), e) for e in entries]
            list(pool.map(mover.tree.fsync, {e.below_root[:-1] for e in entries if e.status in IN_PLACE}))
    write_manifest(entries, manifest_json, settings)
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.status] = counts.get(entry.status, 0) + len(entry.file_ids)
    say("files step: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    attention = [e for e in entries if e.status in ("orphan", "missing", "refused", "failed")]
    if attention:
        print_entries("blobs that need attention", attention)
    if counts.get("failed"):
        raise lifeos_env.MigrationError(f"{counts['failed']} blobs could not be moved (see above); re-run to resume")
    return entries


def source_from(spec: str, bucket: str, limits: Limits = DEFAULT_LIMITS) -> Source:
    """`supabase` (the live bucket, from SUPABASE_URL and SUPABASE_SERVICE_KEY) or a staging folder. The bucket's
    credentials are read here, where they are used: the service key goes no further than the client it opens."""
    if spec != "supabase":
        return LocalSource(Path(spec))
    url, key = os.environ.get("SUPABASE_URL"), os.environ.get("SUPABASE_SERVICE_KEY")
    if not url or not key:
        raise lifeos_env.MigrationError("--files-from supabase needs SUPABASE_URL and SUPABASE_SERVICE_KEY set")
    return SupabaseSource(url, key, bucket, limits)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files-from", required=True, metavar="DIR|supabase", help="staging folder, or supabase")
    parser.add_argument("--storage-root", type=Path, help="default LIFEOS_STORAGE_ROOT or /opt/lifeos/storage/files")
    parser.add_argument("--bucket", help="default: dbt's var storage_bucket")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_LIMITS.concurrency, help="blobs moved at once")
    parser.add_argument("--retries", type=int, default=DEFAULT_LIMITS.retries, help="on 429, 5xx, broken transfers")
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST, help="JSON manifest path")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, copy nothing")
    args = parser.parse_args(argv)
    limits = Limits(retries=args.retries, concurrency=args.concurrency)
    source: Source | None = None
    try:
        lifeos_env.ensure_target()
        settings = load_settings()  # this command's own entry (scripts/move_files.py): its settings are built here
        bucket = args.bucket or settings.storage_bucket
        source = source_from(args.files_from, bucket, limits)
        root = args.storage_root or settings.storage_root
        with run_lock.one_run(settings, "files", root):
            move(
                source, root, settings, bucket=bucket, dry_run=args.dry_run, manifest_json=args.manifest, limits=limits
            )
    except lifeos_env.MigrationError as error:
        message = source.secret.redact(str(error)) if source else str(error)
        say(f"files step failed: {message}", style="red")
        return 1
    return 0
