"""The files step's command: v1's file blobs from Supabase Storage (or a staging folder) to the storage root.

    python scripts/move_files.py --files-from DIR|supabase --storage-root DIR [--dry-run]

The step itself is the package lifeos.files (its __init__ lists the modules); the names below stay
importable from here for callers written before the split (new code imports lifeos.files).
"""

from __future__ import annotations

import sys

from lifeos.console import console
from lifeos.files.blobs import IN_PLACE, PLACEHOLDER
from lifeos.files.bucket import SupabaseSource
from lifeos.files.sources import LocalSource
from lifeos.files.step import main, move, source_from
from lifeos.files.transfer import Limits
from lifeos.files.tree import Tree

__all__ = ["IN_PLACE", "PLACEHOLDER", "Limits", "LocalSource", "SupabaseSource", "Tree", "console"]
__all__ += ["main", "move", "source_from"]

if __name__ == "__main__":
    sys.exit(main())
