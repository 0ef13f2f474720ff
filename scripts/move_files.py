"""Move v1's file blobs from Supabase Storage (or a local staging folder) to local disk under the storage root.

Which blobs: one per v1 `files` row, read from the table `v2_work.int_files`
(object key and local storage_path): the model alone decides which keys may
become paths, and a row it rejected for its storage_path is reported as
refused with the model's reason. Blobs are checked against the
`v1.storage_objects` inventory (size and eTag MD5). Objects in the bucket that no row references are copied to
`<storage root>/orphans/<key>` so nothing is lost.

Each blob is written to a temporary name beside its destination, fsynced,
hashed (sha256 and md5), checked against the inventory's size and MD5, and only
then renamed into place (mode 0640, folders 0750): a run killed at any moment
leaves no partial file under a final name, and a re-run skips blobs already
present with the right checksum and repairs the others. Below the storage root
every folder is opened one name at a time relative to its parent (openat with
O_NOFOLLOW): a symbolic link (or a name that would climb out) is never followed
and its blob is reported as refused. Downloads run concurrently and are retried
with backoff on 429, 5xx and broken transfers.

The outcome of every blob is written to the table lifeos_migration.file_manifest
(the rows of the last run, replaced atomically) and to a JSON file:
file_id, object_key, local_path, size_bytes, sha256, md5, status, detail, with
status one of copied, present, repaired, orphan (blob in place), missing,
refused, failed (not in place). A failed blob makes the step fail; re-run it.

    python scripts/move_files.py --files-from DIR|supabase --storage-root DIR [--dry-run]

`supabase` reads the bucket with SUPABASE_URL and SUPABASE_SERVICE_KEY from the environment.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import itertools
import json
import os
import secrets
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import quote

import httpx
import tenacity
from psycopg2.extras import execute_values
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

import lifeos_env
import run_lock

BUCKET = lifeos_env.dbt_var("storage_bucket")
DEFAULT_MANIFEST = lifeos_env.ROOT / "target" / "file_manifest.json"
WORK_SCHEMA = "v2_work"
V1_SCHEMA = lifeos_env.dbt_var("v1_schema")
MANIFEST = f"{lifeos_env.dbt_var('meta_schema')}.file_manifest"  # its DDL: macros/meta_schema.sql
PLACEHOLDER = ".emptyFolderPlaceholder"
ORPHANS = "orphans"
CHUNK = 1 << 20
PAGE = 100
RETRIES = 5  # after the first attempt; pauses of BACKOFF seconds, doubling each time
BACKOFF = 0.5
CONCURRENCY = 8
IN_PLACE = ("copied", "present", "repaired", "orphan")
console = Console()
T = TypeVar("T")


class ObjectMissing(Exception):
    """The source has no object under this key."""


class Retryable(Exception):
    """A transient failure (429, 5xx, a broken transfer): try again after a pause."""


class Refused(Exception):
    """A path below the storage root the files step will not write through: a symbolic link, a non-folder."""


class Source(Protocol):
    secret: str  # to be kept out of every message (the service key), or ""

    def keys(self) -> set[str]:
        """Every object key in the bucket, in all folders."""

    def chunks(self, key: str) -> Iterator[bytes]:
        """The object's bytes; raises ObjectMissing or Retryable."""


class LocalSource:
    """A staging folder holding the bucket's objects laid out by key."""

    secret = ""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise lifeos_env.MigrationError(f"--files-from {root}: no such folder")
        self.root = root

    def keys(self) -> set[str]:
        return {
            Path(folder, name).relative_to(self.root).as_posix()
            for folder, _, names in os.walk(self.root)
            for name in names
            if name != PLACEHOLDER
        }

    def chunks(self, key: str) -> Iterator[bytes]:
        try:
            with open(self.root / key, "rb") as blob:
                while chunk := blob.read(CHUNK):
                    yield chunk
        except FileNotFoundError as error:
            raise ObjectMissing("not in the staging folder") from error


class SupabaseSource:
    """The live bucket, through the supabase client (its listing, and its authenticated HTTP session)."""

    def __init__(self, url: str, key: str, bucket: str, retries: int, backoff: float, concurrency: int) -> None:
        from supabase import ClientOptions, SupabaseException, create_client  # lazily: slow, only this source needs it

        key, url = key.strip(), url.strip()  # a key pasted with its line end: \r or \n would break the header
        if not (key.isascii() and key.isprintable()):
            raise lifeos_env.MigrationError(
                "SUPABASE_SERVICE_KEY holds a control or non-ASCII character: set it to the service key alone"
            )
        self.secret, self.bucket_id, self.retries, self.backoff = key, bucket, retries, backoff
        self.url = url
        self.concurrency = concurrency
        # One connection pool for the client's listing and for streaming the downloads, authorised as Storage demands.
        self.session = httpx.Client(
            headers={"Authorization": f"Bearer {key}", "apikey": key},
            timeout=httpx.Timeout(60.0, connect=10.0),
            limits=httpx.Limits(max_connections=64),
            follow_redirects=True,
        )
        try:
            client = create_client(url, key, ClientOptions(httpx_client=self.session))
        except SupabaseException as error:
            raise lifeos_env.MigrationError(f"SUPABASE_URL {url!r}: {error.message}") from None
        self.bucket = client.storage.from_(bucket)
        self.object_url = f"{client.storage_url}object/{quote(bucket)}/"

    def keys(self) -> set[str]:
        """List the bucket folder by folder (the API lists one level), the folders of each level at once."""
        keys: set[str] = set()
        level = [""]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            while level:
                try:
                    listed = list(pool.map(self.list_folder, level))
                except Retryable as error:
                    raise lifeos_env.MigrationError(
                        f"SUPABASE_URL {self.url}: cannot list bucket {self.bucket_id} after"
                        f" {self.retries + 1} attempts: {error}"
                    ) from None
                keys.update(key for found, _ in listed for key in found)
                level = [folder for _, folders in listed for folder in folders]
        return keys

    def list_folder(self, prefix: str) -> tuple[list[str], list[str]]:
        """The object keys and the sub-folders (as prefixes) in one folder, page by page."""
        keys: list[str] = []
        folders: list[str] = []
        for offset in itertools.count(0, PAGE):
            page = with_retries(partial(self.list_page, prefix, offset), self.retries, self.backoff)
            for entry in page:
                if entry.get("id") is None:
                    folders.append(f"{prefix}{entry['name']}/")
                elif entry["name"] != PLACEHOLDER:
                    keys.append(f"{prefix}{entry['name']}")
            if len(page) < PAGE:
                return keys, folders
        raise AssertionError("itertools.count() ended")

    def list_page(self, prefix: str, offset: int) -> list[dict[str, object]]:
        from storage3.exceptions import StorageApiError

        try:
            return self.bucket.list(prefix, {"limit": PAGE, "offset": offset})
        except StorageApiError as error:
            status = int(error.status) if str(error.status).isdigit() else 0
            if status == 429 or status >= 500:
                raise Retryable(f"listing {prefix or '/'}: HTTP {status}") from None
            raise lifeos_env.MigrationError(
                f"listing bucket {self.bucket_id} at SUPABASE_URL: HTTP {error.status} "
                + describe(error.message, self.secret)
                + " (is SUPABASE_SERVICE_KEY the service key?)"
            ) from None
        except httpx.TransportError as error:
            raise Retryable(f"listing {prefix or '/'}: {describe(error, self.secret)}") from None

    def chunks(self, key: str) -> Iterator[bytes]:
        try:
            with self.session.stream("GET", self.object_url + quote(key)) as response:
                status = response.status_code
                if status == 400:  # Storage's legacy errors: HTTP 400 with the real status in the body
                    status = storage_status(response.read())
                if status == 404:
                    raise ObjectMissing("not in the bucket (HTTP 404)")
                if status == 429 or status >= 500:
                    raise Retryable(f"HTTP {status}")
                if status != 200:
                    raise RuntimeError(f"HTTP {status}: {response.read().decode(errors='replace')[:200]}")
                yield from response.iter_bytes(CHUNK)
        except httpx.TransportError as error:
            raise Retryable(describe(error, self.secret)) from None


def storage_status(body: bytes) -> int:
    """The status in a Storage error body (`{"statusCode": "404", "error": ...}`), else 400."""
    try:
        return int(json.loads(body)["statusCode"])
    except (ValueError, KeyError, TypeError):
        return 400


def describe(error: BaseException | str, secret: str) -> str:
    """An error as one line for output, logs and the manifest, with the secret blanked out."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text.replace(secret, "[service key]") if secret else text


def with_retries(attempt: Callable[[], T], retries: int, backoff: float) -> T:
    """Call `attempt`; after a Retryable failure wait (`backoff` seconds, doubling, at most 30) and call it again,
    `retries` times at most; the last Retryable is raised as it is (the callers turn it into one line)."""
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(Retryable),
        stop=tenacity.stop_after_attempt(retries + 1),
        wait=tenacity.wait_exponential(multiplier=backoff, max=30.0),
        reraise=True,
    )
    return retrying(attempt)


def printable(key: str) -> str:
    """`key` as text a database can hold: a NUL and bytes that are not UTF-8 (from a folder's names) escaped."""
    raw = key.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


@dataclass(frozen=True)
class Expected:
    size: int | None = None
    md5: str | None = None  # from the inventory's eTag; None for multipart eTags ("<md5>-<parts>")
    sha256: str | None = None  # what a previous run wrote to the same path


@dataclass
class Entry:
    """One manifest row, and the blob move it describes."""

    file_ids: list[str | None]
    object_key: str | None
    local_path: str | None
    status: str  # planned: copy, orphan, missing, refused; after the run: one of the manifest statuses
    detail: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    md5: str | None = None
    expected: Expected = field(default_factory=Expected)
    below_root: tuple[str, ...] = ()  # local_path's names below the storage root, as the filesystem gets them

    def rows(self) -> list[dict[str, object]]:
        row = asdict(self)
        del row["file_ids"], row["expected"], row["below_root"]
        return [{"file_id": file_id, **row} for file_id in self.file_ids]


@dataclass(frozen=True)
class Digest:
    size: int
    sha256: str
    md5: str


# id, object_key, storage_path, size_bytes, reject_rule, reject_detail
FileRow = tuple[str, str | None, str | None, int | None, str | None, str | None]


def read_inputs(bucket: str) -> tuple[list[FileRow], dict[str, Expected], dict[tuple[str, str], str]]:
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
        cur.execute("select to_regclass(%s)", (f"{V1_SCHEMA}.storage_objects",))
        inventory: dict[str, Expected] = {}
        if cur.fetchone()[0] is not None:
            cur.execute(
                f"select name, metadata->>'size', metadata->>'eTag' from {V1_SCHEMA}.storage_objects"
                " where bucket_id = %s",
                (bucket,),
            )
            inventory = {
                name: expected_from(size, etag)
                for name, size, etag in cur.fetchall()
                if name.rpartition("/")[2] != PLACEHOLDER
            }
        cur.execute("select to_regclass(%s)", (MANIFEST,))
        previous: dict[tuple[str, str], str] = {}
        if cur.fetchone()[0] is not None:
            cur.execute(
                f"select distinct object_key, local_path, sha256 from {MANIFEST} where status = any(%s)",
                (list(IN_PLACE),),
            )
            previous = {(key, path): sha for key, path, sha in cur.fetchall()}
    return files, inventory, previous


def plan(source: Source, root: Path, bucket: str) -> list[Entry]:
    """Every blob move: one per object key the files rows reference, then the orphans."""
    files, inventory, previous = read_inputs(bucket)
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
        path = str(root / ORPHANS / key)
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
            below_root=(ORPHANS, *key.split("/")),
        )
    return [*entries.values(), *refused]


def expected_from(size: str | None, etag: str | None) -> Expected:
    md5 = (etag or "").strip('"').lower()
    valid = len(md5) == 32 and all(c in "0123456789abcdef" for c in md5)
    return Expected(int(size) if size and size.isdigit() else None, md5 if valid else None)


def mismatch(found: Digest, expected: Expected) -> str | None:
    """How `found` differs from what the blob should be, or None when it matches."""
    if expected.size is not None and found.size != expected.size:
        return f"size {found.size} but the inventory says {expected.size}"
    if expected.md5 is not None and found.md5 != expected.md5:
        return f"md5 {found.md5} but the inventory's eTag is {expected.md5}"
    return None


class StorageRoot:
    """The storage root's tree, walked one name at a time from the root's descriptor, never through a link.

    Each folder below the root is opened relative to its parent with O_NOFOLLOW, so a symbolic link (to a
    folder outside, or in place of a blob) is refused, not followed, however the tree changes meanwhile.
    Which object keys may become paths is int_files' decision; a name that is no plain name
    (empty, `.`, `..`, holding a NUL) can still never be opened as one step down.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    @contextmanager
    def folder(self, names: Sequence[str], create: bool) -> Iterator[int]:
        """A descriptor of the folder `names` below the root, its missing folders made (0750) when `create`."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for depth, name in enumerate(names, 1):
                child = self.step(fd, name, "/".join(names[:depth]), create)
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    @staticmethod
    def plain(name: str, shown: str) -> str:
        """`name`, when opening it is one step down: not empty, `.` or `..`, and without a NUL."""
        if name in ("", ".", "..") or "\x00" in name:
            raise Refused(f"{shown!r} below the storage root is no plain name")
        return name

    @classmethod
    def step(cls, parent: int, name: str, shown: str, create: bool) -> int:
        """Open folder `name` in `parent` without following a link."""
        cls.plain(name, shown)
        created = False
        if create:
            try:
                os.mkdir(name, 0o750, dir_fd=parent)
                created = True
            except FileExistsError:
                pass
        try:
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENOTDIR):
                raise Refused(f"{shown} below the storage root is a symbolic link or no folder") from None
            raise
        if created:
            os.fchmod(child, 0o750)
        return child

    def digest(self, names: Sequence[str]) -> Digest | None:
        """The blob at `names`, or None when there is none; a link or a non-file there is refused."""
        *folders, name = names
        self.plain(name, "/".join(names))  # the blob's own name; write() follows this check (Mover.place)
        try:
            with self.folder(folders, create=False) as parent:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=parent)
        except FileNotFoundError:
            return None
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise Refused(f"{'/'.join(names)} below the storage root is a symbolic link") from None
            raise
        with os.fdopen(fd, "rb") as blob:
            if not stat.S_ISREG(os.fstat(blob.fileno()).st_mode):
                raise Refused(f"{'/'.join(names)} below the storage root is no regular file")
            sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
            while chunk := blob.read(CHUNK):
                sha.update(chunk)
                md5.update(chunk)
                size += len(chunk)
        return Digest(size, sha.hexdigest(), md5.hexdigest())

    def sweep(self, folders: set[tuple[str, ...]]) -> None:
        """Remove the temporary files a killed run left in `folders`."""
        for names in folders:
            try:
                with self.folder(names, create=False) as fd:
                    for stale in os.listdir(fd):
                        if stale.startswith(".lifeos-") and stale.endswith(".part"):
                            os.unlink(stale, dir_fd=fd)
            except (FileNotFoundError, Refused):
                pass

    def fsync(self, names: Sequence[str]) -> None:
        """Make the renames in folder `names` durable."""
        with self.folder(names, create=False) as fd:
            os.fsync(fd)


class Mover:
    def __init__(self, source: Source, root: Path, progress: Progress, retries: int, backoff: float) -> None:
        self.source, self.tree, self.progress = source, StorageRoot(root), progress
        self.retries, self.backoff = retries, backoff
        self.bar = progress.add_task("blobs", total=None)

    def move(self, entry: Entry) -> Entry:
        """Put one blob in place (or find it there) and return its manifest entry."""
        try:
            return self.place(entry)
        except ObjectMissing as error:
            return replace(entry, status="missing", detail=str(error))
        except Refused as error:
            return replace(entry, status="refused", local_path=None, detail=str(error))
        except Exception as error:  # any other failure is recorded, the run goes on, and the step fails at the end
            return replace(entry, status="failed", detail=describe(error, self.source.secret))

    def place(self, entry: Entry) -> Entry:
        old = self.tree.digest(entry.below_root)
        known = entry.expected.md5 or entry.expected.sha256
        if old and known and not mismatch(old, entry.expected) and entry.expected.sha256 in (None, old.sha256):
            self.progress.advance(self.bar, old.size)
            return self.done(entry, old, "present" if entry.status == "copy" else entry.status)
        write = partial(self.write, entry.object_key or "", entry.below_root, entry.expected)
        new = with_retries(write, self.retries, self.backoff)
        if entry.status == "orphan":
            return self.done(entry, new, "orphan")
        return self.done(entry, new, "copied" if old is None else "present" if old == new else "repaired")

    @staticmethod
    def done(entry: Entry, found: Digest, status: str) -> Entry:
        return replace(entry, status=status, size_bytes=found.size, sha256=found.sha256, md5=found.md5)

    def write(self, key: str, names: tuple[str, ...], expected: Expected) -> Digest:
        """Stream the object to a temporary file beside its destination, fsync, verify, and rename it into place."""
        *folders, name = names
        with self.tree.folder(folders, create=True) as parent:
            temporary = f".lifeos-{secrets.token_hex(8)}.part"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640, dir_fd=parent)
            sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
            try:
                with os.fdopen(fd, "wb") as out:
                    os.fchmod(out.fileno(), 0o640)
                    for chunk in self.source.chunks(key):
                        out.write(chunk)
                        sha.update(chunk)
                        md5.update(chunk)
                        size += len(chunk)
                        self.progress.advance(self.bar, len(chunk))
                    out.flush()
                    os.fsync(out.fileno())
                found = Digest(size, sha.hexdigest(), md5.hexdigest())
                if problem := mismatch(found, expected):
                    raise ValueError(problem)
                os.replace(temporary, name, src_dir_fd=parent, dst_dir_fd=parent)
                return found
            except BaseException:
                self.progress.advance(self.bar, -size)
                os.unlink(temporary, dir_fd=parent)
                raise


def make_writable(root: Path) -> None:
    """The storage root, made (0750) if missing and proven writable. The run holds it (run_lock), not this step."""
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        try:
            root.mkdir(mode=0o750)
            root.chmod(0o750)
        except FileExistsError:
            pass
        probe = root / f".lifeos-{secrets.token_hex(8)}.part"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        probe.unlink()
    except OSError as error:
        raise lifeos_env.MigrationError(
            f"storage root {root}: cannot write there ({error.strerror}); choose another --storage-root"
        ) from None


def write_manifest(entries: list[Entry], json_path: Path) -> None:
    """Replace the manifest table's rows in one transaction, and write the same rows as JSON."""
    rows = [row for entry in entries for row in entry.rows()]
    columns = ["file_id", "object_key", "local_path", "size_bytes", "sha256", "md5", "status", "detail"]
    with lifeos_env.transaction() as cur:
        lifeos_env.create_meta_tables(cur, "file_manifest")
        cur.execute(f"delete from {MANIFEST}")
        execute_values(
            cur,
            f"insert into {MANIFEST} ({', '.join(columns)}) values %s",
            [tuple(row[c] for c in columns) for row in rows],
        )
    json_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = json_path.with_name(json_path.name + ".part")
    temporary.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    os.replace(temporary, json_path)


def print_entries(title: str, entries: list[Entry]) -> None:
    """One line per blob (status, key, local path, detail), unwrapped and free of markup."""
    console.print(title, markup=False)
    for e in entries:
        line = f"  {e.status:<8} {e.object_key!r} -> {e.local_path or '(nowhere)'}" + (
            f"  ({e.detail})" if e.detail else ""
        )
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def move(
    source: Source,
    root: Path,
    *,
    bucket: str = BUCKET,
    concurrency: int = CONCURRENCY,
    dry_run: bool = False,
    manifest_json: Path = DEFAULT_MANIFEST,
    retries: int = RETRIES,
    backoff: float = BACKOFF,
) -> list[Entry]:
    """The files step: plan, move every blob, write the manifest; raise when a blob could not be moved."""
    root = Path(os.path.abspath(root))
    if dry_run:
        entries = plan(source, root, bucket)
        print_entries(f"plan: {len(entries)} blobs into {root} (dry run, nothing copied)", entries)
        return entries
    make_writable(root)
    return move_all(source, root, bucket, concurrency, manifest_json, retries, backoff)


def move_all(
    source: Source, root: Path, bucket: str, concurrency: int, manifest_json: Path, retries: int, backoff: float
) -> list[Entry]:
    """Plan and move every blob into the writable root, write the manifest; raise when a blob could not be moved."""
    entries = plan(source, root, bucket)
    to_move = [e for e in entries if e.status in ("copy", "orphan")]
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, TimeRemainingColumn(), console=console) as progress:
        mover = Mover(source, root, progress, retries, backoff)
        mover.tree.sweep({e.below_root[:-1] for e in to_move})
        total = sum(e.size_bytes or 0 for e in to_move)  # planned sizes: the inventory's, else files.size_bytes
        progress.update(mover.bar, total=total, description=f"{len(to_move)} blobs")
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            moved = {id(e): done for e, done in zip(to_move, pool.map(mover.move, to_move), strict=True)}
            entries = [moved.get(id(e), e) for e in entries]
            list(pool.map(mover.tree.fsync, {e.below_root[:-1] for e in entries if e.status in IN_PLACE}))
    write_manifest(entries, manifest_json)
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.status] = counts.get(entry.status, 0) + len(entry.file_ids)
    console.print("files step: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    attention = [e for e in entries if e.status in ("orphan", "missing", "refused", "failed")]
    if attention:
        print_entries("blobs that need attention", attention)
    if counts.get("failed"):
        raise lifeos_env.MigrationError(f"{counts['failed']} blobs could not be moved (see above); re-run to resume")
    return entries


def source_from(spec: str, bucket: str, retries: int = RETRIES, concurrency: int = CONCURRENCY) -> Source:
    """`supabase` (the live bucket, from SUPABASE_URL and SUPABASE_SERVICE_KEY) or a staging folder."""
    if spec != "supabase":
        return LocalSource(Path(spec))
    url, key = os.environ.get("SUPABASE_URL"), os.environ.get("SUPABASE_SERVICE_KEY")
    if not url or not key:
        raise lifeos_env.MigrationError("--files-from supabase needs SUPABASE_URL and SUPABASE_SERVICE_KEY set")
    return SupabaseSource(url, key, bucket, retries, BACKOFF, concurrency)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files-from", required=True, metavar="DIR|supabase", help="staging folder, or supabase")
    parser.add_argument("--storage-root", type=Path, help="default LIFEOS_STORAGE_ROOT or /opt/lifeos/storage/files")
    parser.add_argument("--bucket", default=BUCKET, help=f"default {BUCKET}")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help=f"blobs moved at once ({CONCURRENCY})")
    parser.add_argument("--retries", type=int, default=RETRIES, help=f"on 429, 5xx, broken transfers ({RETRIES})")
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST, help="JSON manifest path")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, copy nothing")
    args = parser.parse_args(argv)
    try:
        lifeos_env.ensure_target()
        source = source_from(args.files_from, args.bucket, args.retries, args.concurrency)
        root = args.storage_root or lifeos_env.storage_root()
        with run_lock.one_run("files", root):
            move(
                source,
                root,
                bucket=args.bucket,
                concurrency=args.concurrency,
                dry_run=args.dry_run,
                manifest_json=args.manifest,
                retries=args.retries,
            )
    except lifeos_env.MigrationError as error:
        console.print(f"files step failed: {error}", style="red", markup=False, soft_wrap=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
