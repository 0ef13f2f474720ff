"""PostgreSQL's COPY text format, written: the one renderer of a value as COPY reads it back, shared by the
restore (rows of skipped tables checked through the server) and the sample generator."""

from __future__ import annotations

from datetime import date, datetime

ColumnValue = str | int | bool | date | datetime | list[str] | None


def copy_text(value: ColumnValue) -> str:
    """Render one value in COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, list):
        value = "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value) + "}"
    text = value.isoformat() if isinstance(value, date) else str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
