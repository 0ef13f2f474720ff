"""Life OS v1 -> v2 migration: the library behind the commands in scripts/."""
