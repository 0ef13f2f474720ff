"""The live bucket, through the supabase client: its storage API lists the bucket, and its httpx session
(this module's own, handed to the client) carries the downloads.

The session follows no redirect by itself: a download's redirect is followed by hand, with the client's
credential headers (`apiKey` and `Authorization: Bearer`, both the service key, as Storage demands) to
SUPABASE_URL's origin (scheme, host and port) only and with none at all anywhere else (a CDN or S3 URL
needs none); a listing, sent by the client, is never redirected. 429 and 5xx answers and broken transfers
are Retryable, with the server's Retry-After; any other answer is one line.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import threading
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


def transient(status: int) -> bool:
    return status == 429 or status >= 500


def storage_status(body: bytes) -> int | None:
    """The status in a Storage error body (`{"statusCode": "404", "message": ...}`), if it holds one."""
    try:
        status = str(json.loads(body).get("statusCode", ""))
        return int(status) if status.isdigit() else None
    except (ValueError, AttributeError):
        return None


class SupabaseSource:
    """The live bucket of a Supabase project, read with its service key."""

    def __init__(self, url: str, key: str, bucket: str, limits: Limits) -> None:
        from supabase import ClientOptions, SupabaseException, create_client  # lazily: slow, only this source needs it

        key, url = key.strip(), url.strip()  # a key pasted with its line end: \r or \n would break the header
        if not (key.isascii() and key.isprintable()):
            raise lifeos_env.MigrationError(
                "SUPABASE_SERVICE_KEY holds a control or non-ASCII character: set it to the service key alone"
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise lifeos_env.MigrationError(f"SUPABASE_URL {url!r}: Invalid URL (want https://<project>.supabase.co)")
        self.secret, self.bucket, self.limits, self.url = Secret(key), bucket, limits, url
        self.answered = threading.local()  # each thread's last answer: storage3's errors carry no headers
        self.session = httpx.Client(
            timeout=httpx.Timeout(limits.read_timeout, connect=10.0),
            limits=httpx.Limits(max_connections=64),
            follow_redirects=False,  # by hand: the key goes to this origin only
            event_hooks={"response": [self.remember]},
        )
        try:
            client = create_client(url, key, ClientOptions(httpx_client=self.session))
        except SupabaseException as error:
            raise lifeos_env.MigrationError(f"SUPABASE_URL {url!r}: {error.message}") from None
        self.files = client.storage.from_(bucket)
        self.credentials = client.options.headers  # what the client sends Storage: apiKey, Authorization
        # The object route storage3's `download` uses; a download is streamed from it here because `download`
        # returns the whole body at once, past the inventory's size cap and the deadline (see transfer.py), and
        # it unquotes the key first (a key holding `%25` would be fetched as `%`).
        self.objects = f"{client.storage_url}object/{quote(bucket)}/"
        self.origin = origin(self.objects)

    def remember(self, response: httpx.Response) -> None:
        self.answered.response = response

    @contextmanager
    def request(self, url: str, timeout: float) -> Iterator[httpx.Response]:
        """The answer to a GET, redirects followed; credentials only to SUPABASE_URL's origin."""
        for _ in range(REDIRECTS + 1):
            headers = self.credentials if origin(url) == self.origin else {}
            request = self.session.build_request(
                "GET", url, headers=headers, timeout=httpx.Timeout(timeout, connect=10.0)
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
        """One page of a folder, through the client's storage API."""
        from storage3.exceptions import StorageApiError

        where = f"listing bucket {self.bucket} at SUPABASE_URL"
        options = {"limit": PAGE, "offset": offset, "sortBy": {"column": "name", "order": "asc"}}
        try:
            page = self.files.list(prefix, options)
            if not all(isinstance(entry, dict) and isinstance(entry.get("name"), str) for entry in page):
                raise ValueError("not a list of objects")
        except httpx.TransportError as error:
            raise Retryable(f"listing {prefix or '/'}: {self.secret.describe(error)}") from None
        except StorageApiError as error:
            answer: httpx.Response = self.answered.response
            if transient(answer.status_code):
                raise Retryable(f"listing {prefix or '/'}: HTTP {answer.status_code}", retry_after(answer)) from None
            if answer.is_redirect:  # the client's requests follow none: the key goes to SUPABASE_URL alone
                raise lifeos_env.MigrationError(
                    f"{where}: HTTP {answer.status_code} to {self.shown(answer.headers['location'])}, not followed"
                    " (is SUPABASE_URL the project's API URL, https://<project>.supabase.co?)"
                ) from None
            raise lifeos_env.MigrationError(
                f"{where}: HTTP {error.status} {self.shown(error.message)} (is SUPABASE_SERVICE_KEY the service key?)"
            ) from None
        except (ValueError, TypeError):  # answered 200, but not with JSON objects
            answer = self.answered.response
            kind = answer.headers.get("content-type", "no content type")
            raise lifeos_env.MigrationError(
                f"{where}: HTTP 200 but {kind}, not Storage's JSON listing: {self.shown(answer.text)}"
                " (is SUPABASE_URL the project's API URL, https://<project>.supabase.co?)"
            ) from None
        return page

    def shown(self, text: str) -> str:
        """Part of an answer's body for a message: redacted before it is cut, so the cut keeps no piece of the
        key; on one line."""
        return " ".join(self.secret.redact(text).split())[:SHOWN]

    def chunks(self, key: str, timeout: float) -> Generator[bytes, None, None]:
        try:
            with self.request(f"{self.objects}{quote(key)}", timeout) as answer:
                status = answer.status_code
                if status == 400:  # Storage's legacy errors: HTTP 400 with the real status in the body
                    status = storage_status(answer.read()) or 400
                if status == 404:
                    raise ObjectMissing("not in the bucket (HTTP 404)")
                if transient(status):
                    raise Retryable(f"HTTP {status}", retry_after(answer))
                if status != 200:
                    raise RuntimeError(f"HTTP {status}: {self.shown(answer.read().decode(errors='replace'))}")
                yield from answer.iter_bytes()  # as they arrive: the size cap and the deadline act between reads
        except httpx.TransportError as error:
            raise Retryable(self.secret.describe(error)) from None
