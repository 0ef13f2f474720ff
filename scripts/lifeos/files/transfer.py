"""One blob into place: streamed to a temporary name beside its destination within a size cap and a deadline,
fsynced, hashed, verified, renamed; retried on transient failures.

The inventory's size is a hard cap: a body that would pass it is stopped there (its temporary file removed),
and one that ends short of it is a broken transfer, tried again. A download has a deadline from its size at
a minimum rate (`Limits.grace + size / Limits.min_rate` seconds; the size is the inventory's, else the files
row's), and no read waits past it; a blob of unknown size has only the read timeout. Transient
failures (429, 5xx, broken, cut short or too slow transfers) are tried `Limits.retries` more times, after
the pause the server asked for (Retry-After, at most `Limits.retry_after_max` seconds), else an exponential
backoff.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TypeVar

import tenacity
from rich.progress import Progress

from lifeos.files.blobs import Digest, Entry, ObjectMissing, Refused, Retryable, mismatch
from lifeos.files.sources import Source
from lifeos.files.tree import Tree, temporary_name

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """How hard the step tries and how long it waits."""

    retries: int = 5  # after the first attempt
    backoff: float = 0.5  # the first pause, in seconds, doubling each time up to 30 s
    retry_after_max: float = 120.0  # the longest pause a server's Retry-After gets
    min_rate: float = 64 * 1024  # bytes per second a download must average
    grace: float = 30.0  # seconds every download gets on top of size / min_rate
    read_timeout: float = 60.0  # the longest wait for one read
    concurrency: int = 8  # blobs moved at once


DEFAULT_LIMITS = Limits()


def pause(limits: Limits) -> Callable[[tenacity.RetryCallState], float]:
    """Tenacity's wait: the server's Retry-After (capped), else exponential backoff."""
    backoff = tenacity.wait_exponential(multiplier=limits.backoff, max=30.0)

    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, Retryable) and error.retry_after is not None:
            return min(error.retry_after, limits.retry_after_max)
        return backoff(state)

    return wait


def with_retries(attempt: Callable[[], T], limits: Limits) -> T:
    """Call `attempt`; after a Retryable failure pause and call it again, `limits.retries` times at most;
    the last Retryable is raised as it is (the callers turn it into one line)."""
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(Retryable),
        stop=tenacity.stop_after_attempt(limits.retries + 1),
        wait=pause(limits),
        reraise=True,
    )
    return retrying(attempt)


class Mover:
    def __init__(self, source: Source, root: Path, progress: Progress, limits: Limits) -> None:
        self.source, self.tree, self.progress, self.limits = source, Tree(root), progress, limits
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
            return replace(entry, status="failed", detail=self.source.secret.describe(error))

    def place(self, entry: Entry) -> Entry:
        old = self.tree.digest(entry.below_root)
        known = entry.expected.md5 or entry.expected.sha256
        if old and known and not mismatch(old, entry.expected) and entry.expected.sha256 in (None, old.sha256):
            self.progress.advance(self.bar, old.size)
            return self.done(entry, old, "present" if entry.status == "copy" else entry.status)
        new = with_retries(partial(self.write, entry), self.limits)
        if entry.status == "orphan":
            return self.done(entry, new, "orphan")
        return self.done(entry, new, "copied" if old is None else "present" if old == new else "repaired")

    @staticmethod
    def done(entry: Entry, found: Digest, status: str) -> Entry:
        return replace(entry, status=status, size_bytes=found.size, sha256=found.sha256, md5=found.md5)

    def write(self, entry: Entry) -> Digest:
        """Stream the object to a temporary file beside its destination, fsync, verify, and rename it into place."""
        *folders, name = entry.below_root
        cap = entry.expected.size
        deadline = None if entry.size_bytes is None else self.limits.grace + entry.size_bytes / self.limits.min_rate
        started = time.monotonic()
        with self.tree.folder(folders, create=True) as parent:
            temporary = temporary_name()
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640, dir_fd=parent)
            sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
            try:
                timeout = self.limits.read_timeout if deadline is None else min(self.limits.read_timeout, deadline)
                # closing: a body stopped midway (the cap, the deadline) hangs up at once, not when collected
                with os.fdopen(fd, "wb") as out, closing(self.source.chunks(entry.object_key or "", timeout)) as body:
                    os.fchmod(out.fileno(), 0o640)
                    for chunk in body:
                        if cap is not None and size + len(chunk) > cap:
                            raise ValueError(f"more than the inventory's {cap} bytes: stopped there")
                        out.write(chunk)
                        sha.update(chunk)
                        md5.update(chunk)
                        size += len(chunk)
                        self.progress.advance(self.bar, len(chunk))
                        if deadline is not None and time.monotonic() - started > deadline:
                            raise Retryable(
                                f"slower than {self.limits.min_rate:.0f} bytes/s: {size} of {entry.size_bytes}"
                                f" bytes after {deadline:.0f} s"
                            )
                    out.flush()
                    os.fsync(out.fileno())
                if cap is not None and size < cap:
                    raise Retryable(f"cut short: {size} of the inventory's {cap} bytes")
                found = Digest(size, sha.hexdigest(), md5.hexdigest())
                if problem := mismatch(found, entry.expected):
                    raise ValueError(problem)
                try:
                    os.replace(temporary, name, src_dir_fd=parent, dst_dir_fd=parent)
                except OSError as error:  # a folder there, a name too long: nothing to retry
                    raise self.tree.refusal(error, "/".join(entry.below_root)) from None
                return found
            except BaseException:
                self.progress.advance(self.bar, -size)
                os.unlink(temporary, dir_fd=parent)
                raise
