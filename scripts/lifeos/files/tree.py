"""A folder walked one name at a time from its descriptor, never through a link: the storage root, a staging folder.

Each folder below the top is opened relative to its parent with O_NOFOLLOW, so a symbolic link (to a
folder outside, or in place of a blob) is refused, not followed, however the tree changes meanwhile. A
blob is opened the same way and without blocking (O_NONBLOCK: a FIFO there would block `open` forever),
and anything but a regular file is refused. Which object keys may become paths is int_files' decision;
a name that is no plain name (empty, `.`, `..`, holding a NUL) can still never be opened as one step down.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import lifeos_env
from lifeos.files.blobs import Digest, Refused

CHUNK = 1 << 20
TEMPORARY = (".lifeos-", ".part")  # a blob on its way: prefix and suffix of its temporary name
REFUSED_ERRNOS = {
    errno.ELOOP: "is a symbolic link",
    errno.ENOTDIR: "is a symbolic link or no folder",
    errno.ENAMETOOLONG: "is a name too long for the filesystem",
    errno.EISDIR: "is a folder",
}


class Tree:
    """The tree below `top`, named `where` in messages ("the storage root", "the source folder")."""

    def __init__(self, top: Path, where: str = "the storage root") -> None:
        self.top, self.where = top, where

    def refused(self, shown: str, what: str) -> Refused:
        return Refused(f"{shown} below {self.where} {what}")

    @contextmanager
    def folder(self, names: Sequence[str], create: bool) -> Iterator[int]:
        """A descriptor of the folder `names` below the top, its missing folders made (0750) when `create`."""
        fd = os.open(self.top, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for depth, name in enumerate(names, 1):
                child = self.step(fd, name, "/".join(names[:depth]), create)
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def plain(self, name: str, shown: str) -> str:
        """`name`, when opening it is one step down: not empty, `.` or `..`, and without a NUL."""
        if name in ("", ".", "..") or "\x00" in name:
            raise self.refused(repr(shown), "is no plain name")
        return name

    def step(self, parent: int, name: str, shown: str, create: bool) -> int:
        """Open folder `name` in `parent` without following a link."""
        self.plain(name, shown)
        created = False
        if create:
            try:
                os.mkdir(name, 0o750, dir_fd=parent)
                created = True
            except FileExistsError:
                pass
            except OSError as error:
                raise self.refusal(error, shown) from None
        try:
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
        except OSError as error:
            raise self.refusal(error, shown, folder=True) from None
        if created:
            os.fchmod(child, 0o750)
        return child

    def refusal(self, error: OSError, shown: str, folder: bool = False) -> BaseException:
        """The Refused an OSError on `shown` means, or the error itself when it means no refusal."""
        if error.errno == errno.ELOOP and folder:
            return self.refused(shown, REFUSED_ERRNOS[errno.ENOTDIR])
        if error.errno in REFUSED_ERRNOS:
            return self.refused(shown, REFUSED_ERRNOS[error.errno])
        return error

    @contextmanager
    def open_blob(self, names: Sequence[str]) -> Iterator[BinaryIO | None]:
        """The regular file at `names` opened for reading, or None when there is none; anything else there
        (a link, a FIFO, a device, a folder) is refused without waiting on it."""
        *folders, name = names
        shown = "/".join(names)
        self.plain(name, shown)
        try:
            with self.folder(folders, create=False) as parent:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=parent)
        except FileNotFoundError:
            yield None
            return
        except OSError as error:
            raise self.refusal(error, shown) from None
        with os.fdopen(fd, "rb") as blob:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise self.refused(shown, "is no regular file")
            os.set_blocking(fd, True)
            yield blob

    def digest(self, names: Sequence[str]) -> Digest | None:
        """The size and checksums of the blob at `names`, or None when there is none."""
        with self.open_blob(names) as blob:
            if blob is None:
                return None
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
                        if stale.startswith(TEMPORARY[0]) and stale.endswith(TEMPORARY[1]):
                            os.unlink(stale, dir_fd=fd)
            except (FileNotFoundError, Refused):
                pass

    def fsync(self, names: Sequence[str]) -> None:
        """Make the renames in folder `names` durable."""
        with self.folder(names, create=False) as fd:
            os.fsync(fd)


def temporary_name() -> str:
    return f"{TEMPORARY[0]}{secrets.token_hex(8)}{TEMPORARY[1]}"


def make_writable(root: Path) -> None:
    """The storage root, made (0750) if missing and proven writable. The run holds it (run_lock), not this step."""
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        try:
            root.mkdir(mode=0o750)
            root.chmod(0o750)
        except FileExistsError:
            pass
        probe = root / temporary_name()
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        probe.unlink()
    except OSError as error:
        raise lifeos_env.MigrationError(
            f"storage root {root}: cannot write there ({error.strerror}); choose another --storage-root"
        ) from None
