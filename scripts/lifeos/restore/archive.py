"""Dump files: plain text checked at its start, archives (custom, tar, directory) read through pg_restore."""

from __future__ import annotations

import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import lifeos_env
from lifeos.restore.contract import MigrationError, excerpt
from lifeos.restore.loader import Loader
from lifeos.restore.reader import DumpReader

# The archive entries a restore reads: every table's definition, partition attachment, column default and data
# (partitions and inheritance children of the v1 tables hold their rows; the data of the others is checked).
TOC_ENTRY = re.compile(r"\d+; \d+ \d+ (TABLE|TABLE ATTACH|TABLE DATA|DEFAULT) (\S+) (\S+)")
# A child process (pg_restore) that neither reads its input nor writes output for this long is stopped.
STALL_SECONDS = 10.0


class Watchdog:
    """Stops a child process that, while we wait for its output, neither reads its input nor writes for
    STALL_SECONDS: a pg_restore spinning on a damaged archive never holds the restore's transaction open."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.waiting = False
        self.stalled = False
        self.last = time.monotonic()
        threading.Thread(target=self.watch, daemon=True).start()

    def input_read(self) -> int:
        """Bytes the process has read so far (Linux), its progress through the archive."""
        try:
            return int(Path(f"/proc/{self.process.pid}/io").read_text().split("rchar: ")[1].split()[0])
        except (OSError, IndexError, ValueError):
            return 0

    def watch(self) -> None:
        read = self.input_read()
        while self.process.poll() is None:
            time.sleep(min(1.0, STALL_SECONDS / 4))
            now = self.input_read()
            if now != read or not self.waiting:
                read, self.last = now, time.monotonic()
            elif time.monotonic() - self.last > STALL_SECONDS:
                self.stalled = True
                self.process.kill()
                return

    def lines(self, output: IO[bytes]) -> Iterator[bytes]:
        while True:
            self.waiting = True
            line = output.readline()
            self.waiting, self.last = False, time.monotonic()
            if not line:
                return
            yield line


def run_pg_restore(path: Path, arguments: list[str], read: Callable[[Iterator[bytes]], None] | None = None) -> str:
    """Run the newest pg_restore on `path` under a watchdog; hand its output lines to `read`, or return them.

    A failure of pg_restore (or a stall) is raised as one line; otherwise `read`'s own error is.
    """
    program = lifeos_env.pg_client("pg_restore")
    with (
        tempfile.TemporaryFile() as errors,
        subprocess.Popen([program, *arguments, str(path)], stdout=subprocess.PIPE, stderr=errors) as process,
    ):
        watchdog = Watchdog(process)
        lines = watchdog.lines(process.stdout)
        failure = output = None
        try:
            if read is None:
                output = b"".join(lines).decode("utf-8", errors="replace")
            else:
                read(lines)
        except MigrationError as error:
            failure = error
            process.kill()
        process.wait()
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    if watchdog.stalled:
        raise MigrationError(
            f"pg_restore made no progress on {path} for {STALL_SECONDS:g} s and was stopped:"
            " the archive is truncated or damaged"
        )
    if process.returncode not in (0, -9):
        raise pg_restore_failure(path, stderr)
    if failure is not None:
        raise failure
    return output or ""


def pg_restore_failure(path: Path, stderr: str) -> MigrationError:
    if version := re.search(r"unsupported version \((\d+\.\d+)\)", stderr):
        return MigrationError(
            f"{path} is archive format {version.group(1)}, newer than the newest pg_restore here reads"
        )
    if "end of file" in stderr or "truncated" in stderr:
        return MigrationError(f"truncated dump: pg_restore cannot read {path} to its end")
    lines = [line for line in stderr.splitlines() if line.strip()]
    return MigrationError(f"pg_restore cannot read {path}: {lines[-1] if lines else 'no message'}")


def list_archive(path: Path) -> str:
    """The archive's table of contents (pg_restore -l): it is checked before any transaction opens."""
    return run_pg_restore(path, ["-l"])


def read_archive(path: Path, listing: str, loader: Loader) -> DumpReader:
    """A custom, tar or directory archive: pg_restore prints the tables' entries, read strictly as plain text."""
    wanted = [line for line in listing.splitlines() if TOC_ENTRY.match(line)]
    readers = []
    with tempfile.NamedTemporaryFile("w", suffix=".list") as toc:
        toc.write("".join(f"{line}\n" for line in wanted))
        toc.flush()

        def read(lines: Iterator[bytes]) -> None:
            readers.append(DumpReader(lines, str(path), loader))
            readers[0].read()

        run_pg_restore(path, ["--no-owner", "--no-privileges", "-L", toc.name, "-f", "-"], read)
    return readers[0]


def inspect(path: Path) -> str | None:
    """Check a dump before any transaction opens: an archive's table of contents, or None for plain text."""
    if not path.exists():
        raise MigrationError(f"no dump at {path}")
    if path.is_dir():
        return list_archive(path)
    with path.open("rb") as file:
        head = file.read(512)
    if head.startswith(b"PGDMP") or head[257:262] == b"ustar":
        return list_archive(path)
    check_plain(path, head)
    return None


def read_file(path: Path, listing: str | None, loader: Loader) -> DumpReader:
    """Read a dump file of any kind into the loader."""
    if listing is not None:
        return read_archive(path, listing, loader)
    with path.open("rb") as file:
        reader = DumpReader(file, str(path), loader)
        reader.read()
    return reader


def check_plain(path: Path, head: bytes) -> None:
    """Refuse what is no pg_dump text at all: a plain dump opens with comments, SET or a psql meta-command."""
    if not head:
        raise MigrationError(f"not a pg_dump file: {path} is empty")
    if head.startswith(b"\x1f\x8b"):
        raise MigrationError(f"not a pg_dump file: {path} is gzip-compressed; gunzip it first")
    first = next((line.strip() for line in head.decode("utf-8", "replace").splitlines() if line.strip()), "")
    if not first.startswith(("--", "SET ", "\\")):
        raise MigrationError(f"not a pg_dump file: {path} starts with {excerpt(first[:40])}")
