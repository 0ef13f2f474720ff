"""The files step: blobs from a Storage server on 127.0.0.1 or a staging folder to the storage root, on a real DB."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_storage import FAST, KEY, FakeStorage, file_id, manifest, md5, remote, run_cli, write_inputs

import generate_sample
import lifeos_env
import migrate
import restore_v1
import run_lock
from lifeos.files.blobs import IN_PLACE, PLACEHOLDER
from lifeos.files.bucket import SupabaseSource
from lifeos.files.sources import LocalSource
from lifeos.files.step import move, source_from
from lifeos.settings import load as load_settings

ORPHANS = load_settings().orphans_folder  # var orphans_folder: where the files step puts the orphans
BUCKET = load_settings().storage_bucket


@pytest.fixture
def bucket() -> dict[str, bytes]:
    return {
        "a/b/c/deep.txt": b"deep\n" * 100,
        "東京/photo 🌅.jpg": os.urandom(70_000),
        "space folder/file with space.pdf": os.urandom(3_000),
        "Cafe\u0301 #1 & co?/copy (1) 100%25+ 🌅.txt": b"NFD, #, &, ?, (1), %25, + and emoji, byte for byte",
        "empty.bin": b"",
        "many/.emptyFolderPlaceholder": b"",
        **{f"many/item-{i:03}.txt": f"item {i}".encode() for i in range(130)},  # more than one list page
        "stray/unreferenced.txt": b"nobody points here",
    }


def test_bucket_is_copied_verified_with_retries_and_orphans(
    fresh_database: str, root: Path, tmp_path: Path, bucket: dict[str, bytes]
) -> None:
    bucket["big/video.bin"] = os.urandom(50 * 1024 * 1024)
    bucket["listed/but-404.txt"] = b"the server will not serve it"
    referenced = [k for k in bucket if k != "stray/unreferenced.txt" and "Placeholder" not in k] + ["gone.pdf"]
    write_inputs(root, {file_id(n): k for n, k in enumerate(referenced)}, bucket)
    with FakeStorage("life-os-files", bucket, KEY) as storage:
        storage.faults["a/b/c/deep.txt"] = ["429", "429"]
        storage.faults["東京/photo 🌅.jpg"] = ["500", "500"]
        storage.faults["space folder/file with space.pdf"] = ["cut"]
        storage.faults["big/video.bin"] = ["cut"]
        storage.faults["listed/but-404.txt"] = ["404"] * 10
        move(remote(storage), root, load_settings(), manifest_json=tmp_path / "m.json", limits=FAST)
        retried = {k: storage.downloads.count(k) for k in storage.faults}
        clients = {headers.get("x-client-info", "none").partition("/")[0] for _, _, headers, _ in storage.requests}
    assert clients == {"supabase-py"}  # the listing and the downloads both carry the supabase client's headers
    rows = manifest()
    assert {k: r["status"] for k, r in rows.items() if r["status"] != "copied"} == {
        "gone.pdf": "missing",
        "listed/but-404.txt": "missing",
        "stray/unreferenced.txt": "orphan",
    }
    assert retried == {
        "a/b/c/deep.txt": 3,
        "東京/photo 🌅.jpg": 3,
        "space folder/file with space.pdf": 2,
        "big/video.bin": 2,
        "listed/but-404.txt": 1,
    }
    for key, body in bucket.items():
        if key in rows and rows[key]["status"] in IN_PLACE:
            local = Path(str(rows[key]["local_path"]))
            assert local == (root / ORPHANS / key if key.startswith("stray/") else root / key)
            assert local.read_bytes() == body, key
            assert (rows[key]["size_bytes"], rows[key]["md5"]) == (len(body), md5(body))
            assert rows[key]["sha256"] == hashlib.sha256(body).hexdigest()
    assert not any("Placeholder" in str(p) for p in root.rglob("*"))
    assert {oct(p.stat().st_mode & 0o777) for p in root.rglob("*") if p.is_file()} == {"0o640"}
    assert {oct(p.stat().st_mode & 0o777) for p in [root, *root.rglob("*")] if p.is_dir()} == {"0o750"}
    as_json = {r["object_key"]: r for r in json.loads((tmp_path / "m.json").read_text())}
    assert as_json.keys() == rows.keys()
    assert as_json["empty.bin"]["sha256"] == hashlib.sha256(b"").hexdigest() == rows["empty.bin"]["sha256"]


def test_rerun_skips_present_blobs_and_repairs_wrong_ones(
    fresh_database: str, root: Path, tmp_path: Path, bucket: dict[str, bytes]
) -> None:
    keys = ["a/b/c/deep.txt", "東京/photo 🌅.jpg", "empty.bin", "space folder/file with space.pdf"]
    write_inputs(root, {file_id(n): k for n, k in enumerate(keys)}, {k: bucket[k] for k in keys[:3]})
    with FakeStorage("life-os-files", {k: bucket[k] for k in keys}, KEY) as storage:
        move(remote(storage), root, load_settings(), manifest_json=tmp_path / "m.json", limits=FAST)
        assert len(storage.downloads) == 4
        move(remote(storage), root, load_settings(), manifest_json=tmp_path / "m.json", limits=FAST)
        assert len(storage.downloads) == 4, "a re-run downloads nothing that is in place"
        assert {r["status"] for r in manifest().values()} == {"present"}
        (root / keys[0]).write_bytes(b"corrupted")
        (root / keys[3]).write_bytes(b"not what the last run wrote")  # no eTag: known by the last run's sha256
        (root / keys[1]).unlink()
        move(remote(storage), root, load_settings(), manifest_json=tmp_path / "m.json", limits=FAST)
    statuses = {k: r["status"] for k, r in manifest().items()}
    assert statuses == {keys[0]: "repaired", keys[1]: "copied", keys[2]: "present", keys[3]: "repaired"}
    assert all((root / k).read_bytes() == bucket[k] for k in keys)


def test_blobs_that_keep_failing_or_do_not_verify_fail_the_step_and_leave_no_file(
    fresh_database: str, root: Path, tmp_path: Path
) -> None:
    objects = {
        "flaky.txt": b"never",
        "wrong.txt": b"not what the inventory says",
        "short.bin": b"12345",
        "fine.txt": b"ok",
    }
    write_inputs(root, {file_id(n): key for n, key in enumerate(objects)}, {})
    with lifeos_env.transaction() as cur:
        cur.executemany(
            "insert into v1.storage_objects (bucket_id, name, metadata) values ('life-os-files', %s, %s)",
            [
                ("wrong.txt", json.dumps({"size": 27, "eTag": f'"{md5(b"other")}"'})),
                ("short.bin", json.dumps({"size": 9, "eTag": '"0a1b2c3d4e5f60718293a4b5c6d7e8f9-2"'})),  # multipart
            ],
        )
    with FakeStorage("life-os-files", objects, KEY) as storage:
        storage.faults["flaky.txt"] = ["500"] * 10
        with pytest.raises(lifeos_env.MigrationError, match="3 blobs could not be moved"):
            move(remote(storage), root, load_settings(), manifest_json=tmp_path / "m.json", limits=FAST)
        assert storage.downloads.count("flaky.txt") == storage.downloads.count("short.bin") == 4  # both retried
    rows = manifest()
    assert rows["flaky.txt"]["status"] == "failed"
    assert (rows["wrong.txt"]["status"], rows["wrong.txt"]["detail"]) == (
        "failed",
        f"ValueError: md5 {md5(objects['wrong.txt'])} but the inventory's eTag is {md5(b'other')}",
    )
    assert (rows["short.bin"]["status"], rows["short.bin"]["detail"]) == (
        "failed",
        "Retryable: cut short: 5 of the inventory's 9 bytes",
    )
    assert rows["fine.txt"]["status"] == "copied"
    assert sorted(p.name for p in root.iterdir()) == ["fine.txt"]


def test_names_that_escape_the_storage_root_are_refused(fresh_database: str, root: Path, tmp_path: Path) -> None:
    """int_files' verdict refuses a row; a bucket name (or a row the model got wrong) never climbs out either."""
    objects = {"../escape.txt": b"x", "a/../../up.txt": b"x", "/abs.txt": b"x", "nul\x00.txt": b"x", "ok.txt": b"ok"}
    objects |= {"up/..": b"x", "dot/.": b"x"}
    rows = {file_id(1): "a/../../up.txt", file_id(2): None, file_id(3): "ok.txt"}
    write_inputs(root, rows, {})
    with FakeStorage("life-os-files", objects, KEY) as storage:
        move(remote(storage), root, load_settings(), manifest_json=tmp_path / "m.json", limits=FAST)
        assert storage.downloads == ["ok.txt"]
    statuses = {k: (r["status"], r["local_path"]) for k, r in manifest().items()}
    details = {k: r["detail"] for k, r in manifest().items()}
    assert details[None] == "unsafe_storage_path: storage_path /x gives an absolute object key"  # the model's verdict
    assert details["a/../../up.txt"] == "'a/..' below the storage root is no plain name"
    assert statuses == {
        "a/../../up.txt": ("refused", None),
        None: ("refused", None),
        "../escape.txt": ("refused", None),
        "/abs.txt": ("refused", None),
        "up/..": ("refused", None),
        "dot/.": ("refused", None),
        "nul\\x00.txt": ("refused", None),
        "ok.txt": ("copied", str(root / "ok.txt")),
    }
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        "m.json",
        "storage/files/ok.txt",
    ]


def test_dry_run_prints_the_plan_and_copies_nothing(
    fresh_database: str, root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    staging = tmp_path / "staging"
    (staging / "deep folder").mkdir(parents=True)
    (staging / "deep folder" / "a b.txt").write_bytes(b"a")
    write_inputs(root, {file_id(1): "deep folder/a b.txt"}, {})
    move(LocalSource(staging), root, load_settings(), dry_run=True, manifest_json=tmp_path / "m.json")
    assert f"copy     'deep folder/a b.txt' -> {root}/deep folder/a b.txt" in capsys.readouterr().out
    assert not root.exists() and not (tmp_path / "m.json").exists()
    with lifeos_env.transaction() as cur:
        cur.execute("select to_regclass('lifeos_migration.file_manifest')")
        assert cur.fetchone() == (None,)


def cli(*args: str, url: str, key: str) -> subprocess.Popen[str]:
    env = {**os.environ, "SUPABASE_URL": url, "SUPABASE_SERVICE_KEY": key}
    command = [sys.executable, "scripts/move_files.py", "--files-from", "supabase", *args]
    return subprocess.Popen(
        command, cwd=lifeos_env.ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_kill_9_mid_copy_then_resume(fresh_database: str, root: Path, tmp_path: Path) -> None:
    objects = {"big.bin": os.urandom(8 * 1024 * 1024), "small.txt": b"small"}
    write_inputs(root, {file_id(1): "big.bin", file_id(2): "small.txt"}, objects)
    with FakeStorage("life-os-files", objects, KEY) as storage:
        storage.faults["big.bin"] = ["stall"]  # half the body, then silence: the copy is mid-way
        run = cli("--storage-root", str(root), "--manifest", str(tmp_path / "m.json"), url=storage.url, key=KEY)
        deadline = time.monotonic() + 60
        while not [p for p in root.glob(".lifeos-*.part") if p.stat().st_size > 0] and time.monotonic() < deadline:
            time.sleep(0.05)
        run.send_signal(signal.SIGKILL)
        run.communicate()
        assert list(root.glob(".lifeos-*.part")), "the copy was not under way when killed"
        assert not (root / "big.bin").exists()
        move(remote(storage), root, load_settings(), manifest_json=tmp_path / "m.json", limits=FAST)
    assert (root / "big.bin").read_bytes() == objects["big.bin"]
    assert {k: r["status"] for k, r in manifest().items()} in (
        {"big.bin": "copied", "small.txt": "present"},
        {"big.bin": "copied", "small.txt": "copied"},  # when the kill came before small.txt was done
    )
    assert sorted(p.name for p in root.iterdir()) == ["big.bin", "small.txt"]


def test_the_service_key_never_appears_in_output_errors_or_manifest(
    fresh_database: str, root: Path, tmp_path: Path
) -> None:
    objects = {"fails.txt": b"x", "ok.txt": b"ok"}
    write_inputs(root, {file_id(1): "fails.txt", file_id(2): "ok.txt", file_id(3): "gone.txt"}, {})
    with FakeStorage("life-os-files", objects, KEY) as storage:
        storage.faults["fails.txt"] = ["500"] * 10
        failing = cli(
            "--storage-root",
            str(root),
            "--manifest",
            str(tmp_path / "m.json"),
            "--retries",
            "1",
            url=storage.url,
            key=KEY,
        )
        wrong_key = "sb-wrong-key-4417-DO-NOT-PRINT"
        outputs = list(failing.communicate())  # one run at a time: the database is the first run's till it ends
        refused = cli("--storage-root", str(tmp_path / "other root"), url=storage.url, key=wrong_key)
        outputs += refused.communicate()
    assert failing.returncode == 1 and refused.returncode == 1
    assert "1 blobs could not be moved" in outputs[0]
    assert "listing bucket life-os-files at SUPABASE_URL: HTTP 403 invalid signature" in outputs[2]
    with lifeos_env.transaction() as cur:
        cur.execute("select string_agg(m::text, ' ') from lifeos_migration.file_manifest m")
        outputs.append(cur.fetchone()[0])
    outputs.append((tmp_path / "m.json").read_text())
    assert "ok.txt" in outputs[-1] and "gone.txt" in outputs[-2]
    assert not [o for o in outputs if KEY in o or wrong_key in o]


def test_sample_blobs_from_a_staging_folder_land_where_int_files_points(
    fresh_database: str, root: Path, tmp_path: Path
) -> None:
    restore_v1.restore(load_settings(), restore_v1.SAMPLE_DUMP)  # the sample's v1 with its storage.objects inventory
    staging = generate_sample.write_sample_blobs(1, tmp_path / "staging")
    (staging / "stray").mkdir()
    (staging / "stray" / "left over.txt").write_bytes(b"no files row")
    (staging / "stray" / PLACEHOLDER).write_bytes(b"")
    (staging / os.fsdecode(b"stray/latin-1 \xe9t\xe9.txt")).write_bytes(b"a name that is not UTF-8")
    migrate.build_int_files()
    move(LocalSource(staging), root, load_settings(), manifest_json=tmp_path / "m.json")
    with lifeos_env.transaction() as cur:
        cur.execute(
            "select f.id::text, f.object_key, f.storage_path, trim(both '\"' from o.metadata->>'eTag')"
            " from v2_work.int_files f join v1.storage_objects o on o.name = f.object_key"
        )
        files = cur.fetchall()
    rows = {r["file_id"]: r for r in manifest().values() if r["file_id"]}
    assert len(files) == 20
    for row_id, key, storage_path, etag in files:
        assert (rows[row_id]["status"], rows[row_id]["local_path"], rows[row_id]["md5"]) == (
            "copied",
            storage_path,
            etag,
        )
        assert Path(storage_path).read_bytes() == (staging / key).read_bytes()
    assert manifest()["stray/left over.txt"]["status"] == "orphan"
    assert manifest()["stray/latin-1 \\xe9t\\xe9.txt"]["status"] == "refused"
    assert (root / ORPHANS / "stray" / "left over.txt").read_bytes() == b"no files row"
    assert not list(root.rglob(PLACEHOLDER))


def test_bad_input_is_one_clear_line(fresh_database: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(lifeos_env.MigrationError, match=r"v2_work\.int_files does not exist: build it first"):
        move(LocalSource(root.parent.parent), root, load_settings())
    with pytest.raises(lifeos_env.MigrationError, match="--files-from /nowhere: no such folder"):
        source_from("/nowhere", BUCKET)
    monkeypatch.delenv("SUPABASE_SERVICE_KEY", raising=False)
    with pytest.raises(lifeos_env.MigrationError, match="needs SUPABASE_URL and SUPABASE_SERVICE_KEY"):
        source_from("supabase", BUCKET)
    with pytest.raises(lifeos_env.MigrationError, match="SUPABASE_URL 'ftp://x': Invalid URL"):
        SupabaseSource("ftp://x", KEY, BUCKET, FAST)
    write_inputs(root.parent, {file_id(1): "a.txt"}, {})  # storage_path under another root than the step's
    with pytest.raises(lifeos_env.MigrationError, match=r"is not under the storage root .*: run both with the same"):
        move(LocalSource(root.parent.parent), root, load_settings())


def test_symbolic_links_below_the_root_are_refused_not_followed(
    fresh_database: str, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"not yours")
    staging = tmp_path / "staging"
    objects = {"2025/a.txt": b"a", "linked.txt": b"l", "fine/b.txt": b"b", "stray/c.txt": b"c"}
    for key, body in objects.items():
        (staging / key).parent.mkdir(parents=True, exist_ok=True)
        (staging / key).write_bytes(body)
    write_inputs(root, {file_id(1): "2025/a.txt", file_id(2): "linked.txt", file_id(3): "fine/b.txt"}, objects)
    root.mkdir(parents=True)
    (root / "2025").symlink_to(outside)
    (root / "linked.txt").symlink_to(outside / "secret.txt")
    (root / ORPHANS).symlink_to(outside)
    move(LocalSource(staging), root, load_settings(), manifest_json=tmp_path / "m.json")
    assert [(p.name, p.read_bytes()) for p in outside.iterdir()] == [("secret.txt", b"not yours")]
    rows = manifest()
    assert {k: (r["status"], r["local_path"], r["detail"]) for k, r in rows.items() if r["status"] == "refused"} == {
        "2025/a.txt": ("refused", None, "2025 below the storage root is a symbolic link or no folder"),
        "linked.txt": ("refused", None, "linked.txt below the storage root is a symbolic link"),
        "stray/c.txt": ("refused", None, f"{ORPHANS} below the storage root is a symbolic link or no folder"),
    }
    assert (rows["fine/b.txt"]["status"], (root / "fine" / "b.txt").read_bytes()) == ("copied", b"b")
    assert (root / "2025").is_symlink() and (root / "linked.txt").is_symlink()  # left as they were, reported


def test_a_service_key_with_a_line_end_is_stripped_and_never_printed(
    fresh_database: str, root: Path, tmp_path: Path
) -> None:
    objects = {"ok.txt": b"ok"}
    write_inputs(root, {file_id(1): "ok.txt"}, objects)
    with FakeStorage("life-os-files", objects, KEY) as storage:
        runs = [
            run_cli("--files-from", "supabase", "--storage-root", str(root), "--manifest", str(tmp_path / "m.json"),
                    key=KEY + end, url=storage.url + end)
            for end in ("\r", "\n", "\r\n", " \t")
        ]  # fmt: skip
        bad = run_cli("--files-from", "supabase", "--storage-root", str(root), key=KEY + "\x01x", url=storage.url)
    assert [code for code, _ in runs] == [0, 0, 0, 0], runs
    assert manifest()["ok.txt"]["status"] in ("copied", "present")
    assert bad == (
        1,
        "files step failed: SUPABASE_SERVICE_KEY holds a control or non-ASCII character: set it to the service key"
        " alone\n",
    )
    assert not [output for _, output in runs if KEY in output]


def test_an_unreachable_storage_url_is_one_clear_line(fresh_database: str, root: Path) -> None:
    write_inputs(root, {file_id(1): "ok.txt"}, {})
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    code, output = run_cli("--files-from", "supabase", "--storage-root", str(root), "--retries", "1", key=KEY, url=url)
    assert (code, output) == (
        1,
        f"files step failed: SUPABASE_URL {url}: cannot list bucket life-os-files after 2 attempts: listing /:"
        " ConnectError: [Errno 111] Connection refused\n",
    )


def test_a_read_only_or_busy_storage_root_is_one_clear_line(fresh_database: str, root: Path, tmp_path: Path) -> None:
    write_inputs(root, {file_id(1): "ok.txt"}, {})
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "ok.txt").write_bytes(b"ok")
    root.mkdir(parents=True)
    with read_only(root):
        code, output = run_cli("--files-from", str(staging), "--storage-root", str(root))
    assert (code, output) == (1, f"files step failed: storage root {root}: cannot write there ({READ_ONLY}); choose"
                                 " another --storage-root\n")  # fmt: skip
    assert list(root.iterdir()) == []
    with run_lock.storage_lock("files", root):  # a files step under way on the same root
        code, output = run_cli("--files-from", str(staging), "--storage-root", str(root))
    assert code == 1 and output.count("\n") == 1
    assert output.startswith(f"files step failed: another run is using the storage root {root}: lifeos files pid ")
    assert output.endswith(" UTC; wait for it to end\n")
    assert list(root.iterdir()) == []
    assert run_cli("--files-from", str(staging), "--storage-root", str(root))[0] == 0
    assert (root / "ok.txt").read_bytes() == b"ok"


READ_ONLY = "Operation not permitted" if os.geteuid() == 0 else "Permission denied"


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """`folder` read-only even for root: immutable (chattr +i) as root, mode 0555 otherwise."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o750)
