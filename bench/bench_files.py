"""Benchmark the files step (scripts/move_files.py); the results go to bench/RESULTS.md, section "Files step".

1. Local staging folder: the whole step (plan from the database, copy with fsync, sha256
   and md5, rename, manifest) against `cp -r` of the same tree (target: at most 1.5x),
   against `cp -r` then `sync` (the same durability), and against only reading and
   checksumming the tree (the step's floor: it must hash every byte).
2. The Storage stand-in on 127.0.0.1 answering every request after 50 ms: concurrency 8
   (the default) against one blob at a time. Target: at least 4x the throughput.

Each measurement is the median of --repeat runs into an emptied destination; the page
cache is warm for both sides. Run: .venv/bin/python bench/bench_files.py
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "python_tests")]

from conftest import new_database  # noqa: E402
from fake_storage import FakeStorage, write_inputs  # noqa: E402

import lifeos_env  # noqa: E402 (after the path set-up above)
from lifeos.console import console  # noqa: E402
from lifeos.files.sources import LocalSource  # noqa: E402
from lifeos.files.step import move, source_from  # noqa: E402
from lifeos.files.transfer import Limits  # noqa: E402
from lifeos.files.tree import Tree  # noqa: E402
from lifeos.settings import load as load_settings  # noqa: E402

OUT = ROOT / "bench" / "out" / "files"
KEY = "bench-service-key"


def median_seconds(run: Callable[[], object], reset: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        reset()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_tree(count: int, seed: int = 7) -> dict[str, bytes]:
    """A bucket-like tree: nested folders, sizes from 1 KiB to 4 MiB (log-uniform), a few empty files."""
    rng = random.Random(seed)
    tree = {}
    for i in range(count):
        folder = "/".join(f"d{rng.randrange(6)}" for _ in range(rng.randrange(4)))
        size = 0 if i % 50 == 0 else int(2 ** rng.uniform(10, 22))
        tree[f"{folder}/{uuid.UUID(int=rng.getrandbits(128))}_blob {i}.bin".lstrip("/")] = rng.randbytes(size)
    return tree


def emptied(*paths: Path) -> Callable[[], None]:
    def reset() -> None:
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)

    return reset


def bench_local(count: int, repeat: int) -> None:
    tree = make_tree(count)
    staging, root, copy = OUT / "staging", OUT / "storage", OUT / "cp"
    emptied(staging)()
    for key, body in tree.items():
        (staging / key).parent.mkdir(parents=True, exist_ok=True)
        (staging / key).write_bytes(body)
    write_inputs(root, {str(uuid.uuid4()): key for key in tree}, tree)
    source = LocalSource(staging)
    manifest = OUT / "manifest.json"

    def cp(then_sync: bool) -> None:
        subprocess.run(["cp", "-r", staging, copy], check=True)
        if then_sync:
            os.sync()  # the durability the files step gives each blob (fsync before rename)

    def checksums_only() -> None:  # the step's floor: read every blob once, sha256 and md5 it, on 8 threads
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(Tree(staging).digest, (tuple(key.split("/")) for key in tree)))

    plain = median_seconds(lambda: cp(False), emptied(copy), repeat)
    synced = median_seconds(lambda: cp(True), emptied(copy), repeat)
    floor = median_seconds(checksums_only, lambda: None, repeat)
    step = median_seconds(lambda: move(source, root, load_settings(), manifest_json=manifest), emptied(root), repeat)
    megabytes = sum(map(len, tree.values())) / 1e6
    print(
        f"| local folder, {count} blobs, {megabytes:.0f} MB | cp -r {plain:.2f} s | cp -r + sync {synced:.2f} s"
        f" | sha256 + md5 only {floor:.2f} s | files step {step:.2f} s"
        f" | {step / plain:.2f}x cp -r, {step / synced:.2f}x cp -r + sync, {step / floor:.2f}x checksums only |"
    )


def bench_remote(count: int, repeat: int) -> None:
    tree = {f"f{i % 4}/blob {i}.bin": random.Random(i).randbytes(64 * 1024) for i in range(count)}
    root = OUT / "remote"
    write_inputs(root, {str(uuid.uuid4()): key for key in tree}, tree)
    manifest = OUT / "manifest.json"

    def step(workers: int) -> None:  # listing and downloads, `workers` requests at a time
        source = source_from("supabase", load_settings().storage_bucket, Limits(concurrency=workers))
        move(source, root, load_settings(), manifest_json=manifest, limits=Limits(concurrency=workers))

    with FakeStorage(load_settings().storage_bucket, tree, KEY, latency=0.05) as storage:
        os.environ.update(SUPABASE_URL=storage.url, SUPABASE_SERVICE_KEY=KEY)
        seconds = {workers: median_seconds(partial(step, workers), emptied(root), repeat) for workers in (1, 8)}
    print(
        f"| Storage stand-in, 50 ms per response, {count} blobs of 64 KiB | one at a time {seconds[1]:.2f} s"
        f" | concurrency 8 {seconds[8]:.2f} s | {seconds[1] / seconds[8]:.1f}x throughput (target >= 4x) |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blobs", type=int, default=400, help="blobs in the local tree (default 400)")
    parser.add_argument("--remote-blobs", type=int, default=200, help="blobs on the Storage stand-in (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement, median reported (default 3)")
    args = parser.parse_args()
    console.quiet = True
    lifeos_env.ensure_target()
    database = os.environ["PGDATABASE"] = new_database()
    try:
        bench_local(args.blobs, args.repeat)
        with lifeos_env.transaction() as cur:
            cur.execute("drop schema v2_work cascade; drop schema v1 cascade")
        bench_remote(args.remote_blobs, args.repeat)
    finally:
        lifeos_env.drop_database(database)
        shutil.rmtree(OUT, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
