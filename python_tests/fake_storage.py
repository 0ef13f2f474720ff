"""A local stand-in for Supabase Storage: the two routes the files step calls for a bucket (the supabase
client's listing, and the object route storage3's `download` uses, which the step streams).

`POST /storage/v1/object/list/{bucket}` lists one folder level under `prefix`
with `limit`/`offset` paging, sorted by name, folders as entries whose `id` is
null, exactly like the real API. `GET /storage/v1/object/{bucket}/{path}` returns
an object's bytes. Every request must carry the service key as
`Authorization: Bearer` and `apikey`, as Supabase
demands (a server made with `key=None` demands nothing: a CDN a download is
redirected to). Faults are switchable per object key: queue them in `faults[key]`,
one is used up per GET: `"404"` (a missing object), `"429"`, `"429:<seconds>"`
(with Retry-After), `"429@<seconds>"` (Retry-After as the HTTP date that
many seconds on), `"500"`, `"cut"` (the body is cut short),
`"cut-no-length"` (half the body without Content-Length, the connection
closed: short but complete to the client), `"stall"` (half the body, then
silence), `"endless"` (the body over and over without Content-Length, until
the client hangs up), `"trickle"` (five bytes a second), `"redirect:<url>"` (a
302 to `<url>`, absolute or relative) and `"echo-key"` (HTTP 403 whose body
quotes the service key where a cut at 200 characters lands inside it, and all
of it but its ends). The listing's faults queue in `list_faults`, one used up
per POST: `"429:<seconds>"`, `"redirect:<url>"` (a 307) and `"html"` (HTTP 200
with a web page). A key absent from `objects` is missing too. A missing object answers HTTP 400 with
`"statusCode": "404"` in its body, as Storage does.
Every request is recorded in `requests` (method, path, headers by lower-case name, time).
`latency` delays every response (the benchmark's 50 ms round trip).
`write_inputs` writes what the files step reads about such a bucket from the database,
`manifest` reads what it wrote; `run_cli` runs it as a user would.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

import psycopg2.extras

import lifeos_env
from lifeos.files.bucket import SupabaseSource
from lifeos.files.transfer import Limits

API = "/storage/v1/object/"
KEY = "sb-service-key-7f3a9c-DO-NOT-PRINT"
FAST = Limits(retries=3, backoff=0.01, concurrency=4)


def md5(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()


def write_inputs(root: Path, rows: dict[str, str | None], inventory: dict[str, bytes]) -> None:
    """The database side of a fake bucket: int_files rows (file id -> object key) and the storage.objects inventory.

    Shaped like v2_work.int_files (built by dbt from v1.files) and v1.storage_objects (written by the
    restore), for buckets the sample's v1 database does not describe.
    """
    with lifeos_env.transaction() as cur:
        cur.execute(
            """
            create schema v2_work;
            create table v2_work.int_files (
                id uuid, object_key text, storage_path text, size_bytes bigint, reject_rule text, reject_detail text);
            create schema v1;
            create table v1.storage_objects (
                id uuid default gen_random_uuid(), bucket_id text, name text, metadata jsonb);
            """
        )
        psycopg2.extras.execute_values(
            cur,
            "insert into v2_work.int_files values %s",
            [
                (file_id, key, f"{root}/{key}", None, None, None)
                if key
                else (file_id, None, None, None, "unsafe_storage_path", "storage_path /x gives an absolute object key")
                for file_id, key in rows.items()
            ],
        )
        psycopg2.extras.execute_values(
            cur,
            "insert into v1.storage_objects (bucket_id, name, metadata) values %s",
            [
                ("life-os-files", name, json.dumps({"size": len(body), "eTag": f'"{md5(body)}"'}))
                for name, body in inventory.items()
            ],
        )


def manifest() -> dict[str | None, dict[str, object]]:
    """The manifest table, by object key."""
    with lifeos_env.transaction() as cur:
        cur.execute("select * from lifeos_migration.file_manifest")
        names = [c.name for c in cur.description]
        return {row[1]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def file_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def remote(storage: FakeStorage, limits: Limits = FAST) -> SupabaseSource:
    return SupabaseSource(storage.url, storage.key, storage.bucket, limits)


def run_cli(*args: str, key: str | None = None, url: str | None = None) -> tuple[int, str]:
    """Run the files step as a user would; its exit code and everything it printed (stdout and stderr)."""
    env = {**os.environ, "SUPABASE_URL": url or "", "SUPABASE_SERVICE_KEY": key or ""}
    command = [sys.executable, "scripts/move_files.py", *args]
    done = subprocess.run(command, cwd=lifeos_env.ROOT, env=env, text=True, capture_output=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


class FakeStorage:
    """A bucket of objects (key -> bytes) served on 127.0.0.1 by threads; use it as a context manager."""

    def __init__(self, bucket: str, objects: dict[str, bytes], key: str | None, latency: float = 0.0) -> None:
        self.bucket = bucket
        self.objects = objects
        self.key = key
        self.latency = latency
        self.faults: dict[str, list[str]] = defaultdict(list)
        self.downloads: list[str] = []  # keys of every GET, in order
        self.list_faults: list[str] = []
        self.requests: list[tuple[str, str, dict[str, str], float]] = []  # method, path, headers, monotonic time
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> FakeStorage:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.server.shutdown()
        self.server.server_close()

    def next_fault(self, key: str) -> str | None:
        with self.lock:
            self.downloads.append(key)
            queue = self.faults.get(key)
            return queue.pop(0) if queue else None

    def listing(self, prefix: str) -> list[dict[str, object]]:
        """One folder level under `prefix`: sub-folders (id null) and objects, sorted by name."""
        if prefix and not prefix.endswith("/"):
            prefix += "/"  # the real API treats the prefix as a folder
        folders: set[str] = set()
        entries: list[dict[str, object]] = []
        for key, body in self.objects.items():
            if not key.startswith(prefix):
                continue
            name, slash, _ = key[len(prefix) :].partition("/")
            if slash:
                folders.add(name)
            else:
                metadata = {"eTag": f'"{md5(body)}"', "size": len(body), "mimetype": "application/octet-stream"}
                entries.append({"name": name, "id": str(uuid.uuid5(uuid.NAMESPACE_URL, key)), "metadata": metadata})
        entries += [{"name": name, "id": None, "metadata": None} for name in folders]
        return sorted(entries, key=lambda entry: str(entry["name"]))


def _handler(storage: FakeStorage) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def authorised(self) -> bool:
            headers = self.headers
            with storage.lock:
                sent = {name.lower(): value for name, value in headers.items()}
                storage.requests.append((self.command, self.path, sent, time.monotonic()))
            if storage.key is None:
                return True
            if headers.get("Authorization") == f"Bearer {storage.key}" and headers.get("apikey") == storage.key:
                return True
            self.reply(403, {"statusCode": "403", "error": "Unauthorized", "message": "invalid signature"})
            return False

        def reply(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def rate_limited(self, fault: str) -> None:
            seconds = fault[4:]
            if fault.startswith("429@"):  # as an HTTP date, `seconds` from now
                seconds = email.utils.formatdate(time.time() + float(seconds), usegmt=True)
            payload = {"statusCode": "429", "error": "too_many_requests", "message": "slow down"}
            self.reply(429, payload, {"Retry-After": seconds} if seconds else None)

        def do_POST(self) -> None:
            time.sleep(storage.latency)
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if not self.authorised():
                return
            if urlsplit(self.path).path != f"{API}list/{storage.bucket}":
                self.reply(404, {"statusCode": "404", "error": "not_found", "message": "Bucket not found"})
                return
            with storage.lock:
                fault = storage.list_faults.pop(0) if storage.list_faults else None
            if fault and fault.startswith("429"):
                self.rate_limited(fault)
                return
            if fault and fault.startswith("redirect:"):
                self.reply(307, {}, {"Location": fault.removeprefix("redirect:")})
                return
            if fault == "html":
                self.reply(200, b"<html><body><h1>Welcome to nginx!</h1></body></html>", {"Content-Type": "text/html"})
                return
            entries = storage.listing(request.get("prefix", ""))
            offset, limit = int(request.get("offset", 0)), int(request.get("limit", 100))
            self.reply(200, entries[offset : offset + limit])

        def do_GET(self) -> None:
            time.sleep(storage.latency)
            if not self.authorised():
                return
            route = f"{API}{storage.bucket}/"
            path = urlsplit(self.path).path
            key = unquote(path[len(route) :]) if path.startswith(route) else None
            fault = storage.next_fault(key) if key is not None else None
            if key not in storage.objects or fault == "404":  # HTTP 400 and the status in the body, like Storage
                self.reply(400, {"statusCode": "404", "error": "not_found", "message": "Object not found"})
            elif fault and fault.startswith("429"):
                self.rate_limited(fault)
            elif fault == "500":
                self.reply(500, {"statusCode": fault, "error": "fault", "message": "injected"})
            elif fault and fault.startswith("redirect:"):
                self.reply(302, {}, {"Location": fault.removeprefix("redirect:")})
            elif fault == "echo-key":
                echoed = f"{'.' * 120} key {storage.key} (also as {str(storage.key)[1:-1]})"  # a cut lands inside it
                self.reply(403, {"statusCode": "403", "error": "Unauthorized", "message": echoed})
            else:
                body = storage.objects[key]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if fault not in ("cut-no-length", "endless"):
                    self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", f'"{md5(body)}"')
                self.end_headers()
                self.send_body(body, fault)

        def send_body(self, body: bytes, fault: str | None) -> None:
            if fault is None:
                self.wfile.write(body)
                return
            self.close_connection = True
            try:
                if fault == "endless":
                    while True:
                        self.wfile.write(body or b"x")
                elif fault == "trickle":
                    for byte in body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.2)
                else:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    if fault == "stall":
                        time.sleep(60)
            except OSError:  # the client hung up
                pass

    return Handler
