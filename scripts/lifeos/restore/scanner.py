"""One pass over plain dump text: its statements, psql meta-commands, comments and COPY data, split as psql does.

The scanner keeps PostgreSQL's lexical state (inside a string, an E'' string, a quoted name, a dollar-quoted
body, a block comment) from one line to the next, so each character is examined once and a statement's text
is held only until its `;`: memory is bounded by the largest statement (or line), time is linear in the dump.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from lifeos.restore.contract import MigrationError, excerpt

# Outside literals and comments, what changes the state: a quote, a statement's end, a psql meta-command,
# a dollar quote's opening, a comment's start, parentheses (psql ends a statement at a `;` outside them).
SPECIAL = re.compile(r"['\";\\$()]|--|/\*")
# In a CREATE FUNCTION or PROCEDURE, names too: psql counts BEGIN, CASE and END, so a SQL-standard body's
# `;`s (BEGIN ATOMIC ... END) do not end the statement.
ROUTINE_SPECIAL = re.compile(SPECIAL.pattern + r"|[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")
SYMBOLS = {"'", '"', ";", "\\", "$", "(", ")", "--", "/*"}
CREATE_ROUTINE = re.compile(r"create\s+(?:or\s+replace\s+)?(?:function|procedure)\b", re.I)
NON_BLANK = re.compile(r"\S")
IDENTIFIER_CHARACTER = re.compile(r"[A-Za-z0-9_$\x80-\U0010ffff]")
DOLLAR_QUOTE = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")
E_STRING_STOP = re.compile(r"['\\]")
COMMENT_MARK = re.compile(r"/\*|\*/")


@dataclass(frozen=True)
class Piece:
    """A statement (without its `;`), a psql meta-command or a `--` comment line between statements."""

    kind: str  # "statement", "meta" or "comment"
    text: str
    line: int  # the line it starts on


class Scanner:
    """Reads a plain dump's lines once; `pieces()` yields what psql would see, `copy_data()` a COPY's rows."""

    def __init__(self, stream: Iterable[bytes], name: str) -> None:
        self.stream = iter(stream)
        self.name = name
        self.lineno = 0
        self.line = ""
        self.pos = 0
        self.work = 0  # characters the scanner examined: each at most once
        self.peak = 0  # the most text held at once: a statement so far and the line it is on
        self.largest = 0  # the longest statement

    def where(self, line: int | None = None) -> str:
        return f"line {line or self.lineno} of {self.name}"

    def next_line(self) -> bool:
        raw = next(self.stream, None)
        self.pos = 0
        if raw is None:
            self.line = ""
            return False
        self.lineno += 1
        try:
            self.line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise MigrationError(f"encoding problem: {self.where()} is not UTF-8 ({error.reason})") from None
        return True

    def pieces(self) -> Iterator[Piece]:
        parts: list[str] = []  # the current statement's text on the lines before this one
        held = 0  # their length
        active = False  # inside a statement
        start = 0  # where the statement's text on this line starts
        first = 0  # the line the statement starts on
        state = ""  # "" (SQL), "'" or "E" (a string), '"' (a quoted name), "/*" (a comment), or a dollar quote's tag
        depth = 0  # nesting of block comments
        parens = blocks = 0  # psql's depth of parentheses, and of BEGIN ... END in a routine's SQL body
        routine = False  # the statement is a CREATE FUNCTION or PROCEDURE
        while self.pos < len(self.line) or self.next_line():
            line, pos = self.line, self.pos
            if state == "" and not active:
                found = NON_BLANK.search(line, pos)
                if found is None:
                    self.work += len(line) - pos
                    self.pos = len(line)
                    continue
                pos = found.start()
                if line.startswith(("--", "\\"), pos):
                    self.work += len(line) - self.pos
                    self.pos = len(line)
                    yield Piece("comment" if line[pos] == "-" else "meta", line[pos:].strip(), self.lineno)
                    continue
                if not line.startswith("/*", pos):
                    active, start, first = True, pos, self.lineno
                    routine = CREATE_ROUTINE.match(line, pos) is not None
            if state == "":
                found = (ROUTINE_SPECIAL if routine else SPECIAL).search(line, pos)
                if found is None:
                    end = len(line)
                else:
                    token, at = found.group(), found.start()
                    end = found.end()
                    if token == ";" and not (parens or blocks):
                        text = "".join(parts) + line[start:at]
                        self.peak = max(self.peak, held + len(line))
                        self.largest = max(self.largest, len(text))
                        parts.clear()
                        held, active = 0, False
                        self.work += end - self.pos
                        self.pos = end
                        if "\x00" in text:
                            raise MigrationError(f"{self.where(first)}: a NUL byte, which no SQL text may hold")
                        if text.strip():  # an empty statement (`;;`): psql sends nothing
                            yield Piece("statement", text, first)
                        continue
                    if token == ";":
                        pass  # inside parentheses or a routine's BEGIN ... END
                    elif token in "()":
                        parens = parens + 1 if token == "(" else max(parens - 1, 0)
                    elif token not in SYMBOLS:  # a name, in a routine's definition
                        blocks = self.count_block(token.lower(), blocks, parens)
                    elif token == "--":
                        end = len(line)
                    elif token == "/*":
                        state, depth = "/*", 1
                    elif token == "'":
                        prefix = line[at - 1 : at] in ("e", "E")  # E'...', unless the E ends a longer name
                        state = "E" if prefix and (at < 2 or not IDENTIFIER_CHARACTER.match(line, at - 2)) else "'"
                    elif token == '"':
                        state = '"'
                    elif token == "$":
                        quote = DOLLAR_QUOTE.match(line, at)
                        if quote and not (at and IDENTIFIER_CHARACTER.match(line, at - 1)):
                            state, end = quote.group(), quote.end()
                    else:  # a backslash: psql would run the rest of the line as a meta-command
                        statement = excerpt("".join(parts) + line[start:at])
                        unclosed = " (a parenthesis is left open)" if parens else ""
                        raise MigrationError(
                            f"{self.where(first)}: refusing the psql meta-command {excerpt(line[at:])} of line"
                            f" {self.lineno} inside the statement {statement}{unclosed}"
                        )
            elif state in ("'", '"'):
                end = self.closing_quote(line, pos, state)
                state = state if end < 0 else ""
            elif state == "E":
                end = self.closing_e_string(line, pos)
                state = state if end < 0 else ""
            elif state == "/*":
                end, depth = self.comment_end(line, pos, depth)
                state = state if depth else ""
            else:
                found_at = line.find(state, pos)
                end = -1 if found_at < 0 else found_at + len(state)
                state = state if end < 0 else ""
            if end < 0:
                end = len(line)
            self.work += end - self.pos
            self.pos = end
            if end >= len(line):  # the line ends inside a statement or a comment
                if active:
                    parts.append(line[start:])
                    held += len(line) - start
                    self.peak = max(self.peak, held)
                start = 0
        if active or state:
            raise MigrationError(f"truncated dump: {self.name} ends inside a statement (line {self.lineno})")

    @staticmethod
    def count_block(word: str, blocks: int, parens: int) -> int:
        """psql's count of BEGIN ... END (CASE ... END inside one) at a name in a routine's definition."""
        if parens:
            return blocks
        if word == "begin":
            return blocks + 1
        if word == "case" and blocks:
            return blocks + 1
        return blocks - 1 if word == "end" and blocks else blocks

    @staticmethod
    def closing_quote(line: str, pos: int, quote: str) -> int:
        """Just past the quote that closes a string or quoted name (a doubled quote is part of it); -1: none here."""
        while (at := line.find(quote, pos)) >= 0:
            if line.startswith(quote, at + 1):
                pos = at + 2
                continue
            return at + 1
        return -1

    @staticmethod
    def closing_e_string(line: str, pos: int) -> int:
        """Just past the quote that closes an E'' string, where a backslash escapes the character after it."""
        while found := E_STRING_STOP.search(line, pos):
            at = found.start()
            if line[at] == "\\" or line.startswith("'", at + 1):
                pos = at + 2
                continue
            return at + 1
        return -1

    @staticmethod
    def comment_end(line: str, pos: int, depth: int) -> tuple[int, int]:
        """Where a block comment (nested `depth` deep) ends on this line, or the line's end; and its depth there."""
        while depth and (found := COMMENT_MARK.search(line, pos)):
            depth += 1 if found.group() == "/*" else -1
            pos = found.end()
        return (pos if not depth else len(line)), depth

    def copy_data(self, label: str) -> Iterator[str]:
        """The data lines of the COPY ... FROM stdin just yielded, up to its \\. line."""
        if self.line[self.pos :].strip():
            raise MigrationError(f"{self.where()}: text after a COPY ... FROM stdin")
        self.pos = len(self.line)
        while self.next_line():
            self.pos = len(self.line)
            if self.line.rstrip("\r\n") == "\\.":
                return
            yield self.line
        raise MigrationError(f"truncated dump: the COPY data of {label} in {self.name} ends before its \\. line")
