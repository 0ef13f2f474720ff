"""The live bucket: Supabase Storage's two routes (list a folder, get an object) over one httpx session.

Every request carries the service key (`Authorization: Bearer` and `apikey`, as Storage demands) to
SUPABASE_URL's origin only: a redirect is followed by hand, with the key to the same origin (scheme, host
and port) and with no credential header at all anywhere else (a CDN or S3 URL needs none). 429 and 5xx
answers and broken transfers are Retryable, with the server's Retry-After; any other answer is one line.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import time
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from urllib.parse import quote, urlsplit

import httpx

import lifeos_env
from lifeos.files.blobs import PLACEHOLDER, ObjectMissing, Retryable
from lifeos.files.redact import Secret
from lifeos.files.transfer import Limits, with_retries

PAGE = 100
REDIRECTS = 5
SHOWN = 200  # characters of an unexpected answer's body quoted in its message


def origin(url: httpx.URL | str) -> tuple[str, str, int | None]:
    parts = httpx.URL(url)
    return parts.scheme, parts.host, parts.port


def retry_after(response: httpx.Response) -> float | None:
    """The pause Retry-After asks for, in seconds (a number or an HTTP date), or None."""
    value = response.headers.get("retry-after", "").strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def storage_error(body: bytes) -> tuple[int | None, str]:
    """The status and message in a Storage error body (`{"statusCode": "404", "message": ...}`)."""
    try:
        error = json.loads(body)
        status = str(error.get("statusCode", ""))
        return (int(status) if status.isdigit() else None), str(error.get("message") or error.get("error") or "")
    except (ValueError, AttributeError):
        return None, body.decode(errors="replace")


class SupabaseSource:
    """The live bucket of a Supabase project, read with its service key."""

    def __init__(self, url: str, key: str, bucket: str, limits: Limits) -> None:
        key, url = key.strip(), url.strip()  # a key pasted with its line end: \r or \n would break the header
        if not (key.isascii() and key.isprintable()):
            raise lifeos_env.MigrationError(
                "SUPABASE_SERVICE_KEY holds a control or non-ASCII character: set it to the service key alone"
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise lifeos_env.MigrationError(f"SUPABASE_URL {url!r}: Invalid URL (want https://<project>.supabase.co)")
        self.secret, self.bucket, self.limits, self.url = Secret(key), bucket, limits, url
        self.credentials = {"Authorization": f"Bearer {key}", "apikey": key}
        self.api = f"{url.rstrip('/')}/storage/v1/object/"
        self.origin = origin(self.api)
        self.session = httpx.Client(
            timeout=httpx.Timeout(limits.read_timeout, connect=10.0),
            limits=httpx.Limits(max_connections=64),
            follow_redirects=False,  # by hand: the key goes to this origin only
        )

    @contextmanager
    def request(self, method: str, url: str, timeout: float, body: object = None) -> Iterator[httpx.Response]:
        """The answer to a request, redirects followed; credentials only to SUPABASE_URL's origin."""
        for _ in range(REDIRECTS + 1):
            headers = self.credentials if origin(url) == self.origin else {}
            request = self.session.build_request(
                method, url, json=body, headers=headers, timeout=httpx.Timeout(timeout, connect=10.0)
            )
            response = self.session.send(request, stream=True)
            if not response.is_redirect:
                try:
                    yield response
                finally:
                    response.close()
                return
            response.close()
            url = str(response.url.join(response.headers["location"]))
            if response.status_code in (301, 302, 303) and method == "POST":
                method, body = "GET", None
        raise RuntimeError(f"more than {REDIRECTS} redirects")

    def keys(self) -> set[str]:
        """List the bucket folder by folder (the API lists one level), the folders of each level at once."""
        keys: set[str] = set()
        level = [""]
        with ThreadPoolExecutor(max_workers=self.limits.concurrency) as pool:
            while level:
                try:
                    listed = list(pool.map(self.list_folder, level))
                except Retryable as error:
                    raise lifeos_env.MigrationError(
                        f"SUPABASE_URL {self.url}: cannot list bucket {self.bucket} after"
                        f" {self.limits.retries + 1} attempts: {error}"
                    ) from None
                keys.update(key for found, _ in listed for key in found)
                level = [folder for _, folders in listed for folder in folders]
        return keys

    def list_folder(self, prefix: str) -> tuple[list[str], list[str]]:
        """The object keys and the sub-folders (as prefixes) in one folder, page by page."""
        keys: list[str] = []
        folders: list[str] = []
        for offset in itertools.count(0, PAGE):
            page = with_retries(partial(self.list_page, prefix, offset), self.limits)
            for entry in page:
                if entry.get("id") is None:
                    folders.append(f"{prefix}{entry['name']}/")
                elif entry["name"] != PLACEHOLDER:
                    keys.append(f"{prefix}{entry['name']}")
            if len(page) < PAGE:
                return keys, folders
        raise AssertionError("itertools.count() ended")

    def list_page(self, prefix: str, offset: int) -> list[dict[str, object]]:
        where = f"listing bucket {self.bucket} at SUPABASE_URL"
        body = {"prefix": prefix, "limit": PAGE, "offset": offset, "sortBy": {"column": "name", "order": "asc"}}
        try:
            with self.request("POST", f"{self.api}list/{quote(self.bucket)}", self.limits.read_timeout, body) as answer:
                content = answer.read()
        except (httpx.TransportError, RuntimeError) as error:
            raise Retryable(f"listing {prefix or '/'}: {self.secret.describe(error)}") from None
        if answer.status_code == 429 or answer.status_code >= 500:
            raise Retryable(f"listing {prefix or '/'}: HTTP {answer.status_code}", retry_after(answer))
        if answer.status_code != 200:
            status, message = storage_error(content)
            raise lifeos_env.MigrationError(
                f"{where}: HTTP {status or answer.status_code} {self.shown(message)}"
                " (is SUPABASE_SERVICE_KEY the service key?)"
            )
        try:
            page = json.loads(content)
            if not all(isinstance(entry, dict) and isinstance(entry.get("name"), str) for entry in page):
                raise ValueError("not a list of objects")
        except (ValueError, TypeError):
            kind = answer.headers.get("content-type", "no content type")
            text = self.shown(content.decode(errors="replace"))
            raise lifeos_env.MigrationError(
                f"{where}: HTTP 200 but {kind}, not Storage's JSON listing: {text}"
                " (is SUPABASE_URL the project's API URL, https://<project>.supabase.co?)"
            ) from None
        return page

    def shown(self, text: str) -> str:
        """Part of an answer's body for a message: redacted before it is cut, so the cut keeps no piece of the
        key; on one line."""
        return " ".join(self.secret.redact(text).split())[:SHOWN]

    def chunks(self, key: str, timeout: float) -> Generator[bytes, None, None]:
        try:
            with self.request("GET", f"{self.api}{quote(self.bucket)}/{quote(key)}", timeout) as answer:
                status = answer.status_code
                if status == 400:  # Storage's legacy errors: HTTP 400 with the real status in the body
                    status = storage_error(answer.read())[0] or 400
                if status == 404:
                    raise ObjectMissing("not in the bucket (HTTP 404)")
                if status == 429 or status >= 500:
                    raise Retryable(f"HTTP {status}", retry_after(answer))
                if status != 200:
                    raise RuntimeError(f"HTTP {status}: {self.shown(answer.read().decode(errors='replace'))}")
                yield from answer.iter_bytes()  # as they arrive: the size cap and the deadline act between reads
        except httpx.TransportError as error:
            raise Retryable(self.secret.describe(error)) from None
