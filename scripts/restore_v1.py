"""Restore Life OS v1 from a Supabase pg_dump (or a live v1 database) into the v1 schema.

    python scripts/restore_v1.py FILE           # plain, custom (-Fc), tar or directory dump, or a CLI data dump
    python scripts/restore_v1.py --from-dsn DSN # a live v1 database, read over a read-only session

The work is done by the package lifeos.restore (docs/restore.md).
"""

from __future__ import annotations

import sys

from lifeos.restore.command import main, restore
from lifeos.restore.contract import SAMPLE_DUMP, Table, contract

__all__ = ["SAMPLE_DUMP", "Table", "contract", "main", "restore"]

if __name__ == "__main__":
    sys.exit(main())
