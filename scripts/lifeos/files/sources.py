"""Where the blobs come from: what a source is, and a staging folder holding the bucket's objects by key
(the live bucket is in bucket.py)."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Protocol

import lifeos_env
from lifeos.files.blobs import PLACEHOLDER, ObjectMissing
from lifeos.files.redact import Secret
from lifeos.files.tree import CHUNK, Tree


class Source(Protocol):
    secret: Secret  # to be kept out of every message (the service key), or Secret("")

    def keys(self) -> set[str]:
        """Every object key in the bucket, in all folders."""

    def chunks(self, key: str, timeout: float) -> Generator[bytes, None, None]:
        """The object's bytes, each read waited for `timeout` seconds at most; raises ObjectMissing, Refused or
        Retryable."""


class LocalSource:
    """A staging folder holding the bucket's objects laid out by key, read without following links: a
    symbolic link or any non-regular file there is refused, never read through."""

    secret = Secret("")

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise lifeos_env.MigrationError(f"--files-from {root}: no such folder")
        self.root = root
        self.tree = Tree(root, "the source folder")

    def keys(self) -> set[str]:
        """Every name but a folder's (os.walk enters no linked folder); links and FIFOs are keys too, to be
        refused by name when a row references them."""
        return {
            Path(folder, name).relative_to(self.root).as_posix()
            for folder, _, names in os.walk(self.root)
            for name in names
            if name != PLACEHOLDER
        }

    def chunks(self, key: str, timeout: float) -> Generator[bytes, None, None]:
        del timeout  # a local read does not stall
        with self.tree.open_blob(key.split("/")) as blob:
            if blob is None:
                raise ObjectMissing("not in the staging folder")
            while chunk := blob.read(CHUNK):
                yield chunk
