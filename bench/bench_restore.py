"""Bench: restoring a 100x Supabase-shaped dump vs `psql -f` of an already-stripped copy of the same data.

    python bench/bench_restore.py [--scale 100] [--runs 3]
    python bench/bench_restore.py --backslash-lines 5000 10000 20000

The dump is make_supabase_dump's bundled-sample variant at --scale. The stripped
copy is pg_dump of the v1 schema a first restore wrote: exactly the tables and
rows the restore loads, with nothing Supabase left to skip. Each timing is the
whole command in a fresh database on the target server; the median of --runs, interleaved.
Target: the restore takes at most 1.5x as long; the exit status says whether it did.

--backslash-lines times instead a CLI-style (INSERT) dump of one note whose body has N lines beginning with
a backslash (issue 26, case 8) at each N given: seconds and peak memory of the whole command, which grow
linearly with N (the exit status says whether time and memory per line at the largest N stay within 2x of
the smallest's).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import lifeos_env  # noqa: E402
import make_supabase_dump  # noqa: E402

OUT = ROOT / "bench" / "out"
TARGET_RATIO = 1.5


def in_fresh_database(*commands: list[str]) -> float:
    """Seconds `commands` take, run one after the other in a new database (dropped afterwards)."""
    database = f"lifeos_bench_{uuid.uuid4().hex[:8]}"
    lifeos_env.create_database(database)
    try:
        start = time.perf_counter()
        for command in commands:
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=os.environ | {"PGDATABASE": database})
        return time.perf_counter() - start
    finally:
        lifeos_env.drop_database(database)


def peak_of(command: list[str], database: str) -> tuple[float, int]:
    """Seconds and peak RSS (bytes) of `command`, run as this bench's only child process."""
    measure = "import resource, subprocess, sys, time; start = time.perf_counter();"
    measure += " subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL);"
    measure += " print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    done = subprocess.run(
        [sys.executable, "-c", measure, *command],
        capture_output=True, text=True, check=True, env=os.environ | {"PGDATABASE": database},
    )  # fmt: skip
    seconds, peak = done.stdout.split()
    return float(seconds), int(peak) * 1024


def backslash_lines(counts: list[int]) -> int:
    """The restore of a note whose body has N backslash lines, at each N: time and peak memory per line."""
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for lines in counts:
        dump = OUT / f"backslash_{lines}.sql"
        dump.write_bytes(make_supabase_dump.backslash_lines_dump(lines))
        database = f"lifeos_bench_{uuid.uuid4().hex[:8]}"
        lifeos_env.create_database(database)
        try:
            seconds, peak = peak_of([sys.executable, str(ROOT / "scripts" / "restore_v1.py"), str(dump)], database)
        finally:
            lifeos_env.drop_database(database)
        rows.append((lines, dump.stat().st_size, seconds, peak))
        print(
            f"{lines:>6} lines, dump {dump.stat().st_size / 1e6:.2f} MB: {seconds:.2f} s, peak {peak / 2**20:.0f} MiB"
        )
    (first, _, first_s, first_p), (last, _, last_s, last_p) = rows[0], rows[-1]
    ratio = last / first
    time_ok, memory_ok = last_s <= 2 * ratio * first_s, last_p <= 2 * ratio * first_p
    print(f"x{ratio:g} lines: time x{last_s / first_s:.2f}, peak memory x{last_p / first_p:.2f}")
    print(
        f"linear (within 2x per line): time {'met' if time_ok else 'MISSED'}, memory {'met' if memory_ok else 'MISSED'}"
    )
    return 0 if time_ok and memory_ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backslash-lines", type=int, nargs="+", metavar="N", help="time issue 26's case 8 instead")
    args = parser.parse_args(argv)
    lifeos_env.ensure_target()
    if args.backslash_lines:
        return backslash_lines(args.backslash_lines)
    OUT.mkdir(parents=True, exist_ok=True)
    dump = make_supabase_dump.dump_sample(args.scale, OUT)
    stripped = OUT / "stripped.sql"
    with closing(lifeos_env.connect(dbname="postgres")) as conn:  # the server's own clients: a newer pg_dump
        server = conn.server_version // 10000  # writes settings (transaction_timeout) an older server refuses
    psql, pg_dump = lifeos_env.pg_client("psql", server), lifeos_env.pg_client("pg_dump", server)
    restore = [sys.executable, str(ROOT / "scripts" / "restore_v1.py"), str(dump)]
    print(f"psql {psql}, pg_dump {pg_dump}, server {os.environ['PGHOST']}:{os.environ.get('PGPORT', '')}")
    in_fresh_database(restore, [pg_dump, "--schema", "v1", "--no-owner", "--no-privileges", "-f", str(stripped)])
    load = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", str(stripped)]
    runs = [(in_fresh_database(restore), in_fresh_database(load)) for _ in range(args.runs)]  # interleaved: fair
    restore_seconds = statistics.median(r for r, _ in runs)
    psql_seconds = statistics.median(p for _, p in runs)
    ratio = restore_seconds / psql_seconds
    size = dump.stat().st_size / 1e6
    print(f"dump {size:.1f} MB at scale {args.scale}, stripped copy {stripped.stat().st_size / 1e6:.1f} MB")
    print(f"restore_v1.py: {restore_seconds:.2f} s; psql -f stripped: {psql_seconds:.2f} s; ratio {ratio:.2f}")
    print(f"target ratio <= {TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'MISSED'}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
