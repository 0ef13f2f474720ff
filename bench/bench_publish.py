"""Benchmark a re-publish over an unchanged live v2 against its backup's pg_dump (issue 18).

    source scripts/_bootstrap.sh && PYTHONPATH=scripts python bench/bench_publish.py --scale 100 --runs 3

A fresh database gets the sample at `scale` migrated and published (not timed). Then each run builds v2
again (`dbt build`, not timed) and times, side by side on the same live v2:
- publish: `scripts/publish.py publish`, the whole command (guard, backup, swap, change capture);
- dump, lean: `pg_dump -Fd -j <cores>` of live v2 as publish writes it, search_index's rows left out;
- dump, lean, one job: the same as one `pg_dump -Fc` (the format of the backups before);
- dump, full: `pg_dump -Fc` of live v2 with every row, as publish wrote it before the lean backup;
- guard, change log: the guard's query of the app's writes (guard.app_changes);
- guard, row hashes: md5 of every live row, what the guard by hashing did once per publish (and again
  for the rows it published).
Medians go to stdout and to bench/out/publish.json. The database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from psycopg2 import sql

import lifeos_env
from lifeos import backups, catalog, guard, settings

OUT = lifeos_env.ROOT / "bench" / "out"


def seconds(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def run(*command: str) -> None:
    subprocess.run(command, cwd=lifeos_env.ROOT, check=True, stdout=subprocess.DEVNULL)


def pg_dump(scratch: Path, *options: str) -> None:
    """The server's pg_dump of live v2 into scratch/x.dump (a file, or a folder with --format=directory), then
    removed."""
    out = scratch / "x.dump"
    with lifeos_env.transaction() as cur:  # the server's own pg_dump, as publish runs it
        major = backups.server_major(cur.connection)
    run(lifeos_env.pg_client("pg_dump", major), "--schema=public", f"--file={out}", *options)
    backups.remove_dump(out)


def guard_by_hashes() -> None:
    with lifeos_env.transaction() as cur:
        for table in catalog.tables(cur, "public"):
            cur.execute(sql.SQL("select count(md5(t::text)) from {} t").format(catalog.qualified("public", table)))


def guard_by_change_log() -> None:
    with lifeos_env.transaction() as cur:
        guard.app_changes(cur, settings.load(), "public")


def one_run(scratch: Path) -> dict[str, float]:
    run("dbt", "build", "--exclude-resource-type", "unit_test", "--vars", '{"files_checked": false}', "--quiet")
    lean = [f'--exclude-table-data="public"."{table}"' for table in catalog.DERIVED]
    jobs = f"--jobs={os.cpu_count() or 1}"
    return {
        "dump, lean": seconds(lambda: pg_dump(scratch, "--format=directory", jobs, *lean)),
        "dump, lean, one job": seconds(lambda: pg_dump(scratch, "--format=custom", *lean)),
        "dump, full": seconds(lambda: pg_dump(scratch, "--format=custom")),
        "guard, change log": seconds(guard_by_change_log),
        "guard, row hashes": seconds(guard_by_hashes),
        "publish": seconds(lambda: run(sys.executable, "scripts/publish.py", "publish")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=100, help="sample scale (default 100)")
    parser.add_argument("--runs", type=int, default=3, help="runs; medians are reported (default 3)")
    args = parser.parse_args(argv)
    os.environ["PGDATABASE"] = f"lifeos_bench_{uuid.uuid4().hex[:8]}"
    os.environ["DBT_TARGET_PATH"] = str(OUT / "target")  # dbt's target folder of the bench, apart from the project's
    lifeos_env.ensure_target()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            os.environ["LIFEOS_BACKUP_DIR"] = str(Path(scratch) / "backups")
            run(sys.executable, "scripts/migrate.py", "--sample", "--scale", str(args.scale), "--skip-files")
            runs = [one_run(Path(scratch)) for _ in range(args.runs)]
    finally:
        lifeos_env.drop_database(os.environ["PGDATABASE"])
    medians = {key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]}
    print(f"scale {args.scale}, {args.runs} runs, medians: {json.dumps(medians)}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "publish.json").write_text(json.dumps({"scale": args.scale, "runs": runs, "medians": medians}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
