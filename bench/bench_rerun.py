"""Issue 30: the re-run of `lifeos migrate --skip-files` over a live v2 against the floor of the same end state.

    source scripts/_bootstrap.sh && PYTHONPATH=scripts:bench nice python bench/bench_rerun.py --scale 1000 --runs 1

A fresh database (lifeos_rerun) gets the sample at `scale` migrated and published by `lifeos migrate --dump D
--skip-files` (timed: the first run). Then each run times, side by side on that database:
- the re-run: the same command over the live v2 the run before published (its output kept, each line stamped
  with its second, in bench/out/rerun-<run>.log, and dbt's run_results.json as bench/out/rerun-<run>.json);
- the floor (floors.floor_end_state), none of it through the project's SQL: psql load, CREATE TABLE AS copy,
  keys, indexes, a set-based search_index, `pg_dump -Fc` of the result; and the ratio again with the floor's dump
  leaving search_index's rows out, as the project's backup does.
Each run's figures and the ratio go to stdout and to bench/out/rerun.json; `uptime` before and after each run.
The database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import bench_migrate
import floors

import lifeos_env
from lifeos import backups

OUT = bench_migrate.OUT
DATABASE = "lifeos_rerun"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()


def migrate(dump: Path, log: Path) -> float:
    """`lifeos migrate --dump D --skip-files`, its output stamped with seconds since start into `log`; wall seconds."""
    command = [str(Path(sys.executable).parent / "lifeos"), "migrate", "--dump", str(dump), "--skip-files"]
    start = time.perf_counter()
    with subprocess.Popen(command, cwd=lifeos_env.ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as process, log.open("w") as out:  # fmt: skip
        assert process.stdout is not None
        for line in process.stdout:
            out.write(f"{time.perf_counter() - start:7.1f} {line}")
    elapsed = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed, see {log}")
    return elapsed


def largest_nodes(run_results: Path, count: int = 12) -> list[tuple[str, float]]:
    results = json.loads(run_results.read_text())["results"]
    timed = sorted(((r["unique_id"], r["execution_time"]) for r in results), key=lambda node: -node[1])
    return [(node, round(seconds, 2)) for node, seconds in timed[:count]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=1000, help="the sample's scale (default 1000)")
    parser.add_argument("--runs", type=int, default=1, help="re-runs, each with its floor (default 1)")
    args = parser.parse_args(argv)
    lifeos_env.ensure_target()
    os.environ |= {"PGDATABASE": DATABASE, "DBT_TARGET_PATH": str(bench_migrate.TARGET)}
    OUT.mkdir(parents=True, exist_ok=True)
    lifeos_env.drop_database(DATABASE)
    lifeos_env.create_database(DATABASE)
    dump = bench_migrate.sample_dump(args.scale)
    report: dict[str, object] = {"scale": args.scale, "first_run": migrate(dump, OUT / "rerun-first.log")}
    with lifeos_env.transaction() as cur:
        pg_dump = lifeos_env.pg_client("pg_dump", backups.server_major(cur.connection))
    runs = []
    for number in range(1, args.runs + 1):
        row: dict[str, object] = {"uptime_start": uptime()}
        row["rerun"] = migrate(dump, OUT / f"rerun-{number}.log")
        shutil.copy(bench_migrate.TARGET / "run_results.json", OUT / f"rerun-{number}.json")
        row["dbt_elapsed"], row["dbt_nodes"] = bench_migrate.dbt_elapsed()
        row["largest_nodes"] = largest_nodes(OUT / f"rerun-{number}.json")
        floor = floors.floor_end_state(dump, "public", bench_migrate.PSQL, pg_dump, OUT / "floor.dump")
        lean = floor["total"] - floor["pg_dump"] + floor["pg_dump_lean"]  # the floor with search_index's rows undumped
        row |= {"floor": floor, "ratio": row["rerun"] / floor["total"], "ratio_lean_dump": row["rerun"] / lean}  # type: ignore[operator]
        row["uptime_end"] = uptime()
        print(json.dumps(row, indent=1), flush=True)
        runs.append(row)
    (OUT / "rerun.json").write_text(json.dumps(report | {"runs": runs}, indent=2))
    lifeos_env.drop_database(DATABASE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
