"""The files step against a bucket or a folder that is not what it seems (issue 26, cases 9-16), on a real DB."""

from __future__ import annotations

import itertools
import os
import stat
from pathlib import Path
from urllib.parse import unquote

import pytest
from fake_storage import FAST, KEY, FakeStorage, file_id, manifest, md5, remote, run_cli, write_inputs
from hypothesis import given
from hypothesis import strategies as st

import generate_sample
import lifeos_env
import migrate
from lifeos.files.redact import LEAK, REDACTED, Secret
from lifeos.files.sources import LocalSource
from lifeos.files.step import move
from lifeos.files.transfer import Limits
from lifeos.settings import load as load_settings

ORPHANS = load_settings().orphans_folder  # var orphans_folder: where the files step puts the orphans


def staged(folder: Path, objects: dict[str, bytes]) -> Path:
    """A staging folder holding `objects` by key."""
    for key, body in objects.items():
        (folder / key).parent.mkdir(parents=True, exist_ok=True)
        (folder / key).write_bytes(body)
    return folder


def pieces(secret: str) -> set[str]:
    return {secret[i : i + LEAK] for i in range(len(secret) - LEAK + 1)}


def test_an_orphan_never_lands_on_a_referenced_blob(fresh_database: str, root: Path, tmp_path: Path) -> None:
    """Case 9: referenced `orphans/x.txt` and unreferenced `x.txt` both went to <root>/orphans/x.txt."""
    objects = {"orphans/x.txt": b"A, referenced", "x.txt": b"B, no row references it"}
    write_inputs(root, {file_id(1): "orphans/x.txt"}, objects)
    staging = staged(tmp_path / "staging", objects)
    for run in range(3):
        move(LocalSource(staging), root, load_settings(), manifest_json=tmp_path / "m.json", limits=FAST)
        rows = manifest()
        assert (root / "orphans" / "x.txt").read_bytes() == objects["orphans/x.txt"], run
        assert (rows["orphans/x.txt"]["status"], rows["orphans/x.txt"]["md5"]) == (
            "copied" if run == 0 else "present",
            md5(objects["orphans/x.txt"]),
        )
        assert (rows["x.txt"]["status"], rows["x.txt"]["local_path"]) == ("orphan", str(root / ORPHANS / "x.txt"))
        assert (root / ORPHANS / "x.txt").read_bytes() == objects["x.txt"]


def test_a_redirect_carries_the_key_to_the_same_origin_only(fresh_database: str, root: Path, tmp_path: Path) -> None:
    """Case 10: httpx dropped Authorization on a redirect to another host, but `apikey` carried the key there."""
    objects = {"near.txt": b"served after a redirect on the same origin", "far.txt": b"served by a CDN"}
    objects["loop.txt"] = b"never served"
    write_inputs(root, {file_id(n): key for n, key in enumerate(objects)}, objects)
    with (
        FakeStorage("life-os-files", {"far.txt": objects["far.txt"]}, None) as cdn,
        FakeStorage("life-os-files", objects, KEY) as storage,
    ):
        storage.faults["near.txt"] = ["redirect:/storage/v1/object/life-os-files/near.txt"]
        storage.faults["far.txt"] = [f"redirect:{cdn.url}/storage/v1/object/life-os-files/far.txt"]
        storage.faults["loop.txt"] = ["redirect:/storage/v1/object/life-os-files/loop.txt"] * 10  # a loop
        with pytest.raises(lifeos_env.MigrationError, match="1 blobs could not be moved"):
            move(remote(storage), root, load_settings(), manifest_json=tmp_path / "m.json", limits=FAST)
        storage.list_faults = [f"redirect:{cdn.url}/storage/v1/object/list/life-os-files"]
        with pytest.raises(lifeos_env.MigrationError) as refused:  # a listing is the client's: it follows none
            remote(storage).keys()
    assert str(refused.value) == (
        f"listing bucket life-os-files at SUPABASE_URL: HTTP 307 to {cdn.url}/storage/v1/object/list/life-os-files,"
        " not followed (is SUPABASE_URL the project's API URL, https://<project>.supabase.co?)"
    )
    rows = manifest()
    assert {key: row["status"] for key, row in rows.items()} == {
        "near.txt": "copied",
        "far.txt": "copied",
        "loop.txt": "failed",
    }
    assert rows["loop.txt"]["detail"] == "RuntimeError: more than 5 redirects"
    assert [path for _, path, _, _ in cdn.requests] == ["/storage/v1/object/life-os-files/far.txt"]
    sent = [f"{name}: {value}" for _, _, headers, _ in cdn.requests for name, value in headers.items()]
    assert not [header for header in sent if header.lower().startswith(("authorization", "apikey"))], sent
    assert not [header for header in sent if pieces(KEY) & {header[i : i + LEAK] for i in range(len(header))}]
    near = [headers for _, path, headers, _ in storage.requests if path.endswith("/near.txt")]
    assert [headers.get("apikey") for headers in near] == [KEY, KEY]  # the same origin: the key went along


def test_no_piece_of_the_key_reaches_the_console_or_the_manifest(
    fresh_database: str, root: Path, tmp_path: Path
) -> None:
    """Case 10: an error body echoing the key, cut at 200 characters inside it, showed all but its end."""
    objects = {"echo.txt": b"x", "ok.txt": b"ok"}
    write_inputs(root, {file_id(1): "echo.txt", file_id(2): "ok.txt"}, objects)
    with FakeStorage("life-os-files", objects, KEY) as storage:
        storage.faults["echo.txt"] = ["echo-key"]
        code, output = run_cli(
            "--files-from", "supabase", "--storage-root", str(root), "--manifest", str(tmp_path / "m.json"),
            key=KEY, url=storage.url,
        )  # fmt: skip
    with lifeos_env.transaction() as cur:
        cur.execute("select string_agg(m::text, ' ') from lifeos_migration.file_manifest m")
        table = cur.fetchone()[0]
    assert code == 1 and "1 blobs could not be moved" in output
    detail = str(manifest()["echo.txt"]["detail"])
    assert detail.startswith('RuntimeError: HTTP 403: {"statusCode": "403"') and REDACTED in detail
    texts = {"console": output, "JSON manifest": (tmp_path / "m.json").read_text(), "manifest table": table}
    assert {where: sorted(p for p in pieces(KEY) if p in text) for where, text in texts.items()} == {
        "console": [],
        "JSON manifest": [],
        "manifest table": [],
    }


@given(
    secret=st.text(st.characters(codec="ascii", categories=["L", "N", "P"]), min_size=1, max_size=60),
    cuts=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), max_size=4),
    noise=st.lists(st.text(max_size=12), min_size=5, max_size=5),
)
def test_redaction_leaves_no_piece_of_the_key_of_eight_characters(
    secret: str, cuts: list[tuple[int, int]], noise: list[str]
) -> None:
    """Any text made of pieces of the key (cut anywhere) and other text keeps no piece of LEAK characters or more,
    and text holding no such piece is left as it is."""
    parts = [secret[start:end] for start, end in cuts]
    text = "".join(n + p for n, p in zip(noise, [*parts, secret], strict=False))
    redacted = Secret(secret).redact(text).replace(REDACTED, "\0")  # the marker's own letters are no leak
    assert not [p for p in pieces(secret) if p in redacted]
    if len(secret) < LEAK:
        assert secret not in redacted
    if len(secret) >= LEAK and not [p for p in pieces(secret) if p in text]:
        assert Secret(secret).redact(text) == text


def test_links_and_fifos_in_the_source_folder_are_refused_not_followed(
    fresh_database: str, root: Path, tmp_path: Path
) -> None:
    """Case 11: `staging/leak.txt -> ../outside/secret.txt` put the secret into the storage root; a FIFO blocked."""
    outside = staged(tmp_path / "outside", {"secret.txt": b"not yours"})
    staging = staged(tmp_path / "staging", {"fine.txt": b"fine"})
    (staging / "leak.txt").symlink_to("../outside/secret.txt")
    (staging / "linked").symlink_to(outside)
    os.mkfifo(staging / "pipe.txt")
    rows = {file_id(1): "fine.txt", file_id(2): "leak.txt", file_id(3): "linked/secret.txt", file_id(4): "pipe.txt"}
    write_inputs(root, rows, {})
    code, output = run_cli("--files-from", str(staging), "--storage-root", str(root))  # a blocked open: a timeout
    assert code == 0, output
    assert {key: (row["status"], row["detail"]) for key, row in manifest().items() if key != "fine.txt"} == {
        "leak.txt": ("refused", "leak.txt below the source folder is a symbolic link"),
        "linked/secret.txt": ("missing", "not in the bucket; not in the storage.objects inventory"),
        "pipe.txt": ("refused", "pipe.txt below the source folder is no regular file"),
    }
    assert [p.relative_to(root).as_posix() for p in root.rglob("*")] == ["fine.txt"]


def test_a_download_stops_at_the_inventory_size_and_at_its_deadline(
    fresh_database: str, root: Path, tmp_path: Path
) -> None:
    """Case 12: an endless body for a 32-byte object wrote 664 MB; a trickle was waited out."""
    objects = {"endless.bin": b"0123456789abcdef" * 2, "trickle.bin": b"slow" * 4, "stalled.bin": b"s" * 64}
    objects["ok.txt"] = b"ok"
    write_inputs(root, {file_id(n): key for n, key in enumerate(objects)}, objects)
    limits = Limits(retries=1, backoff=0.01, grace=1.0, min_rate=1e6)  # every deadline about 1 s
    with FakeStorage("life-os-files", objects, KEY) as storage:
        storage.faults |= {"endless.bin": ["endless"], "trickle.bin": ["trickle"] * 2, "stalled.bin": ["stall"] * 2}
        with pytest.raises(lifeos_env.MigrationError, match="3 blobs could not be moved"):
            move(remote(storage, limits), root, load_settings(), manifest_json=tmp_path / "m.json", limits=limits)
        tries = {key: storage.downloads.count(key) for key in objects}
    details = {key: str(row["detail"]) for key, row in manifest().items()}
    assert details["endless.bin"] == "ValueError: more than the inventory's 32 bytes: stopped there"
    assert details["trickle.bin"].startswith("Retryable: slower than 1000000 bytes/s: "), details
    assert details["stalled.bin"] == "Retryable: ReadTimeout: timed out", details
    assert tries == {"endless.bin": 1, "trickle.bin": 2, "stalled.bin": 2, "ok.txt": 1}  # a body too long: no retry
    assert [p.name for p in root.iterdir()] == ["ok.txt"]  # no .part left


def test_a_fifo_at_a_blob_path_is_refused_in_one_line(fresh_database: str, root: Path, tmp_path: Path) -> None:
    """Case 13: a FIFO at a blob's path blocked the step forever in `open`."""
    staging = staged(tmp_path / "staging", {"a.txt": b"a", "b.txt": b"b"})
    write_inputs(root, {file_id(1): "a.txt", file_id(2): "b.txt"}, {})
    root.mkdir(parents=True)
    os.mkfifo(root / "a.txt")
    code, output = run_cli("--files-from", str(staging), "--storage-root", str(root))  # a blocked open: a timeout
    assert code == 0, output
    refusal = "a.txt below the storage root is no regular file"
    assert (manifest()["a.txt"]["status"], manifest()["a.txt"]["detail"]) == ("refused", refusal)
    assert [line for line in output.splitlines() if "a.txt" in line] == [
        f"  refused  'a.txt' -> (nowhere)  ({refusal})"
    ]
    assert stat.S_ISFIFO((root / "a.txt").lstat().st_mode) and (root / "b.txt").read_bytes() == b"b"


def test_keys_no_filesystem_holds_are_rejects_and_the_step_finishes(
    fresh_database: str, root: Path, tmp_path: Path
) -> None:
    """Case 14: a 300-byte name, or objects X and X/readme.txt, failed the step on every run."""
    long_key = "a/" + "n" * 300 + ".txt"
    objects = {"X": b"X", "X/readme.txt": b"readme", long_key: b"long", f"{ORPHANS}/y.txt": b"y"}
    deep_key = "d/" * 2100 + "f.txt"  # a local path over 4095 bytes
    generate_sample.main(["--schema", "v1"])
    with lifeos_env.transaction() as cur:
        cur.execute("select id::text from v1.files order by id limit 5")
        ids = [i for (i,) in cur.fetchall()]
        cur.executemany(
            "update v1.files set storage_path = %s where id = %s::uuid",
            list(zip([*objects, deep_key], ids, strict=True)),
        )
    migrate.dbt("build", "--select", "+migration_rejects", "--resource-type", "seed", "--resource-type", "model")
    with lifeos_env.transaction() as cur:
        cur.execute(
            "select v.storage_path, f.object_key, f.reject_rule, r.rule from v2_work.int_files f"
            " join v1.files v on v.id = f.id left join v2_work.migration_rejects r"
            " on r.v1_table = 'files' and r.v1_id::text = f.id::text"
            " where f.id = any(%s::uuid[])",
            (ids,),
        )
        verdicts = {path: (key, rule, listed) for path, key, rule, listed in cur.fetchall()}
    unstorable = (None, "unstorable_storage_path", "unstorable_storage_path")
    assert verdicts == {
        "X": unstorable,
        "X/readme.txt": ("X/readme.txt", None, None),
        long_key: unstorable,
        f"{ORPHANS}/y.txt": unstorable,
        deep_key: unstorable,
    }
    with FakeStorage("life-os-files", objects, KEY) as storage:
        code, output = run_cli("--files-from", "supabase", "--storage-root", str(root), key=KEY, url=storage.url)
    assert code == 0, output  # the other sample files' blobs are missing: a loss to accept, not a failure
    rows = manifest()
    assert (rows["X/readme.txt"]["status"], (root / "X" / "readme.txt").read_bytes()) == ("copied", b"readme")
    assert (rows["X"]["status"], (root / ORPHANS / "X").read_bytes()) == ("orphan", b"X")
    assert (rows[f"{ORPHANS}/y.txt"]["status"], rows[f"{ORPHANS}/y.txt"]["local_path"]) == (
        "orphan",
        str(root / ORPHANS / ORPHANS / "y.txt"),
    )
    assert (rows[long_key]["status"], rows[long_key]["detail"]) == (
        "refused",
        f"{ORPHANS}/{long_key} below the storage root is a name too long for the filesystem",
    )


def test_retry_after_is_honoured_up_to_a_limit_and_short_bodies_are_retried(
    fresh_database: str, root: Path, tmp_path: Path
) -> None:
    """Case 15: Retry-After was ignored, a rate-limited listing failed the step, and a body cut short on a
    connection without Content-Length failed the size check without a retry."""
    objects = {"asks-1s.txt": b"a", "asks-an-hour.txt": b"b", "asks-by-date.txt": b"c", "cut.bin": os.urandom(3000)}
    write_inputs(root, {file_id(n): key for n, key in enumerate(objects)}, objects)
    limits = Limits(retries=2, backoff=0.01, retry_after_max=1.5, concurrency=4)
    with FakeStorage("life-os-files", objects, KEY) as storage:
        storage.list_faults = ["429:1"]
        storage.faults |= {"asks-1s.txt": ["429:1"], "asks-an-hour.txt": ["429:3600"], "cut.bin": ["cut-no-length"]}
        storage.faults["asks-by-date.txt"] = ["429@2.5"]  # a date: whole seconds, so 1.5 to 2.5 s from the answer
        move(remote(storage, limits), root, load_settings(), manifest_json=tmp_path / "m.json", limits=limits)
        times: dict[tuple[str, str], list[float]] = {}
        for method, path, _, at in storage.requests:
            times.setdefault((method, unquote(path).rpartition("/")[2]), []).append(at)
    assert {key: row["status"] for key, row in manifest().items()} == dict.fromkeys(objects, "copied")
    assert (root / "cut.bin").read_bytes() == objects["cut.bin"]
    pauses = {request: [b - a for a, b in itertools.pairwise(at)] for request, at in times.items()}
    assert len(pauses[("POST", "life-os-files")]) == 1 and pauses[("POST", "life-os-files")][0] >= 1.0
    assert len(pauses[("GET", "asks-1s.txt")]) == 1 and pauses[("GET", "asks-1s.txt")][0] >= 1.0
    assert len(pauses[("GET", "asks-an-hour.txt")]) == 1 and 1.5 <= pauses[("GET", "asks-an-hour.txt")][0] < 60
    assert len(pauses[("GET", "asks-by-date.txt")]) == 1 and pauses[("GET", "asks-by-date.txt")][0] >= 1.0
    assert len(pauses[("GET", "cut.bin")]) == 1


def test_control_characters_and_an_html_listing_are_one_clear_line(
    fresh_database: str, root: Path, tmp_path: Path
) -> None:
    """Case 16: keys with ESC or a line end reached the terminal raw; an HTML listing gave a 73-line traceback."""
    evil = "evil\x1b[2J\nname.txt"
    staging = staged(tmp_path / "staging", {"ok.txt": b"ok", evil: b"clears the screen"})
    write_inputs(root, {file_id(1): "ok.txt"}, {})
    code, output = run_cli("--files-from", str(staging), "--storage-root", str(root))
    assert code == 0 and "\x1b" not in output
    shown = "evil\\x1b[2J\\nname.txt"
    assert [line for line in output.splitlines() if "evil" in line] == [
        f"  orphan   '{shown}' -> {root}/{ORPHANS}/{shown}  (no files row references it)"
    ]
    with FakeStorage("life-os-files", {"ok.txt": b"ok"}, KEY) as storage:
        storage.list_faults = ["html"]
        code, output = run_cli("--files-from", "supabase", "--storage-root", str(root), key=KEY, url=storage.url)
    assert (code, output) == (
        1,
        "files step failed: listing bucket life-os-files at SUPABASE_URL: HTTP 200 but text/html, not Storage's"
        " JSON listing: <html><body><h1>Welcome to nginx!</h1></body></html> (is SUPABASE_URL the project's API"
        " URL, https://<project>.supabase.co?)\n",
    )
