"""The service key kept out of every message, and text made safe for a terminal.

A message may hold part of the key: an error body that echoes it, cut at 200
characters inside it. So any run of the message made of substrings of the key
of LEAK characters or more is replaced, not only the whole key.
"""

from __future__ import annotations

import itertools
import unicodedata
from dataclasses import dataclass
from functools import cached_property

LEAK = 8  # the shortest piece of the key that is blanked out wherever it appears
REDACTED = "[service key]"
BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")  # reorder what a terminal shows


@dataclass(frozen=True)
class Secret:
    """A value (the service key, or "" for none) to be kept out of every message."""

    value: str

    @cached_property
    def pieces(self) -> frozenset[str]:
        """Every substring of the value LEAK characters long."""
        return frozenset(self.value[i : i + LEAK] for i in range(len(self.value) - LEAK + 1))

    def redact(self, text: str) -> str:
        """`text` with each run of the value's substrings of LEAK characters or more replaced by REDACTED
        (a value shorter than LEAK: each whole occurrence)."""
        if not self.value:
            return text
        if len(self.value) < LEAK:
            return text.replace(self.value, REDACTED)
        hidden = [False] * len(text)
        for start in range(len(text) - LEAK + 1):
            if text[start : start + LEAK] in self.pieces:
                hidden[start : start + LEAK] = [True] * LEAK
        runs = itertools.groupby(zip(text, hidden, strict=True), key=lambda pair: pair[1])
        return "".join(REDACTED if secret else "".join(c for c, _ in run) for secret, run in runs)

    def describe(self, error: BaseException | str) -> str:
        """An error as one line for output, logs and the manifest, with the value blanked out."""
        return self.redact(error if isinstance(error, str) else f"{type(error).__name__}: {error}")


def terminal(text: str) -> str:
    """`text` safe to print: control characters (ESC, a line end, ...) and bidi overrides shown escaped."""
    return "".join(
        c.encode("unicode_escape").decode() if unicodedata.category(c) == "Cc" or c in BIDI_CONTROLS else c
        for c in text
    )
