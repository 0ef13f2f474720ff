"""What the files step moves: one manifest entry per blob, what the blob should be and what was found."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

PLACEHOLDER = ".emptyFolderPlaceholder"
IN_PLACE = ("copied", "present", "repaired", "orphan")


class ObjectMissing(Exception):
    """The source has no object under this key."""


class Retryable(Exception):
    """A transient failure (429, 5xx, a broken or too slow transfer): try again after a pause, `retry_after`
    seconds when the server said so (Retry-After)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Refused(Exception):
    """A path the files step will not read or write through: a symbolic link, a non-folder, a non-regular file."""


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


def expected_from(size: str | None, etag: str | None) -> Expected:
    """What the inventory (storage.objects metadata) says a blob is."""
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


def printable(key: str) -> str:
    """`key` as text a database can hold: a NUL and bytes that are not UTF-8 (from a folder's names) escaped."""
    raw = key.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
