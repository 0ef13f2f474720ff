"""Benchmark the migration stage by stage against floor (a) and loader (b) (issue 9).

    bench/run                                            # scales 1, 100 and 1000, 3 runs each
    bench/run --scales 5000 --runs 1 --without-loader    # the large run

For each scale: a Supabase-shaped sample dump is made once, then each run
times, as separate processes with their peak memory (GNU time's max RSS):
restore, dbt parse, the models phase (`dbt build` of seeds and models), the
data tests (`dbt test` on the shadow), the unit tests, the whole `dbt build` as
scripts/migrate runs it (unit tests left out), publish, the files step from a
local folder, and the report; floor (a) and loader (b) on the same database; and
last `scripts/migrate` end to end (dbt in-process, one parse) over that live v2.
Medians go to stdout and to bench/out/results.json. Each scale's dump is made
once and kept in bench/out/dumps/ for later invocations.
The PostgreSQL server's own memory is not in the peaks (it is another process).
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
from pathlib import Path

import floors

import generate_sample
import lifeos_env
import make_supabase_dump

ROOT = lifeos_env.ROOT
OUT = ROOT / "bench" / "out"
TARGET = OUT / "target"  # dbt's target folder of the bench, apart from the project's own
PSQL = lifeos_env.pg_client("psql")
SEARCH_INDEX_SQL = "lifeos_migration/models/marts/new/search_index.sql"


def timed(command: list[str]) -> tuple[float, float]:
    """Run `command`; return its wall seconds and peak RSS in MiB. Raise if it fails."""
    with tempfile.NamedTemporaryFile("r") as report:
        start = time.perf_counter()
        result = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report.name, *command], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stdout.strip()[-800:]}")
        return elapsed, int(report.read().split()[-1]) / 1024


def dbt_elapsed() -> tuple[float, int]:
    """dbt's own execution time of the last command (parse excluded) and its node count."""
    results = json.loads((TARGET / "run_results.json").read_text())
    return results["elapsed_time"], len(results["results"])


def one_run(dump: Path, blobs: Path, storage: Path, loader: bool) -> dict[str, float]:
    """One migration, stage by stage, in the order scripts/migrate runs them; then the floors."""
    python = sys.executable
    os.environ["LIFEOS_STORAGE_ROOT"] = str(storage)
    stages = {
        "restore": [python, "scripts/restore_v1.py", str(dump)],
        "dbt_parse": ["dbt", "parse"],
        "dbt_run": ["dbt", "build", "--resource-type", "seed", "--resource-type", "model"],
        "files": [python, "scripts/move_files.py", "--files-from", str(blobs)],
        "dbt_test": ["dbt", "test", "--exclude-resource-type", "unit_test"],
        "dbt_unit_tests": ["dbt", "test", "--resource-type", "unit_test"],
        "dbt_build": ["dbt", "build", "--exclude-resource-type", "unit_test"],
        "report": [python, "scripts/report.py", "--target", str(TARGET)],
        "publish": [
            python,
            "scripts/publish.py",
            "publish",
            "--force",
            "--backup-dir",
            str(storage.parent / "backups"),
        ],
        # the whole migration as a person runs it, over the live v2 just published (issue 18's end-to-end figure)
        "migrate": [python, "scripts/migrate.py", "--dump", str(dump), "--files-from", str(blobs)],
    }
    row: dict[str, float] = {}
    for stage, command in stages.items():
        if stage == "report":  # the floors read the DDL of the shadow the build just wrote
            floor = floors.floor_a(dump, "v2_shadow", PSQL, TARGET / "compiled" / SEARCH_INDEX_SQL)
            row |= {f"floor_a_{part}": seconds for part, seconds in floor.items()}
            if loader:
                row["loader_b"] = floors.loader_b("v2_shadow")
        row[stage], row[f"{stage}_peak_mib"] = timed(command)
        if stage.startswith("dbt_") and stage != "dbt_parse":
            row[f"{stage}_sql"], row[f"{stage}_nodes"] = dbt_elapsed()
    return row


def sample_dump(scale: int) -> Path:
    """The sample dump at `scale`, made once and kept in bench/out/dumps/<scale>/ (the generator is deterministic)."""
    kept = OUT / "dumps" / str(scale)
    if not kept.exists():
        scratch = Path(tempfile.mkdtemp(dir=OUT))
        name = make_supabase_dump.dump_sample(scale, scratch).name
        kept.parent.mkdir(exist_ok=True)
        scratch.rename(kept)
        (kept / "dump").write_text(name)
    return kept / (kept / "dump").read_text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1,100,1000", help="comma-separated sample scales (default 1,100,1000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per scale; medians are reported (default 3)")
    parser.add_argument("--without-loader", action="store_true", help="skip loader (b) (its target is at 1000x)")
    args = parser.parse_args(argv)
    lifeos_env.ensure_target()
    os.environ |= {"PGDATABASE": "lifeos_bench", "DBT_TARGET_PATH": str(TARGET), "DBT_LOG_PATH": str(OUT / "logs")}
    lifeos_env.create_database("lifeos_bench")
    OUT.mkdir(parents=True, exist_ok=True)
    medians: dict[int, dict[str, float]] = {}
    for scale in (int(s) for s in args.scales.split(",")):
        dump = sample_dump(scale)
        with tempfile.TemporaryDirectory(dir=OUT) as scratch:
            work = Path(scratch)
            blobs = work / "blobs"
            generate_sample.write_sample_blobs(scale, blobs)
            storage = work / "storage" / "files"
            runs = [one_run(dump, blobs, storage, not args.without_loader) for _ in range(args.runs)]
        medians[scale] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(f"scale {scale}: " + json.dumps({k: round(v, 2) for k, v in medians[scale].items()}), flush=True)
    results = OUT / "results.json"  # kept across invocations: a later --scales run adds its scales
    kept = json.loads(results.read_text()) if results.exists() else {}
    results.write_text(json.dumps(kept | {str(scale): row for scale, row in medians.items()}, indent=2))
    lifeos_env.drop_database("lifeos_bench")
    return 0


if __name__ == "__main__":
    sys.exit(main())
