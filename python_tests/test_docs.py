"""The dbt docs site: every model, seed, source and column is described, and the
lineage graph renders in a real headless Chromium (Debian's `chromium`)."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

import lifeos_env
import migrate

# plan section 2: the app's tables in v1 (the other v1 sources are Storage's blob inventory)
V1_TABLES = ("domains", "areas", "projects", "tasks", "notes", "links", "files", "daily_focus", "capture",
             "context_types", "reminders")  # fmt: skip
# docs/docs-site.md's picture is docs/lineage_tasks.png; the test writes its own under target/, and that page
# says how to refresh the tracked one from it.
SCREENSHOT = lifeos_env.ROOT / "target" / "lineage_tasks.png"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1600,900",
]


@pytest.fixture(scope="module")
def docs_site(
    migrated_sample: str, migrated_v2_schema: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """`dbt docs generate` for the migrated sample, reading the marts from the schema that holds them."""
    site = tmp_path_factory.mktemp("docs_site")
    with lifeos_env.using_database(migrated_sample):
        migrate.dbt("docs", "generate", "--vars", f"{{marts_schema: {migrated_v2_schema}}}", "--target-path", str(site))
    yield site


def undescribed(manifest: dict[str, Any], catalog: dict[str, Any]) -> list[str]:
    """Every model, seed and source of the project, and each of their columns, that has no description.
    A model's or seed's columns are those in the database; a source's, those its YAML declares (a real v1
    dump may hold more, which the mapping reports as unmapped)."""
    missing = []
    documented = [
        *(n for n in manifest["nodes"].values() if n["resource_type"] in ("model", "seed")),
        *manifest["sources"].values(),
    ]
    for node in documented:
        if not node["description"].strip():
            missing.append(node["unique_id"])
        in_database = catalog["nodes"].get(node["unique_id"], {}).get("columns", {})
        columns = set(node["columns"]) | {name.lower() for name in in_database}
        for column in sorted(columns):
            if not node["columns"].get(column, {}).get("description", "").strip():
                missing.append(f"{node['unique_id']}.{column}")
    return missing


def test_every_model_seed_source_and_column_is_described(docs_site: Path) -> None:
    manifest = json.loads((docs_site / "manifest.json").read_text())
    catalog = json.loads((docs_site / "catalog.json").read_text())
    # every model a build makes a relation of: the mapping back to v1 (tag rollback) is ephemeral
    models = {uid for uid, node in manifest["nodes"].items() if node["resource_type"] == "model"}
    models -= {uid for uid in models if "rollback" in manifest["nodes"][uid]["tags"]}
    assert models <= set(catalog["nodes"]) and catalog["sources"], "the catalog did not read every built relation"
    assert undescribed(manifest, catalog) == []


def test_every_v1_table_flows_to_its_v2_table(docs_site: Path) -> None:
    manifest = json.loads((docs_site / "manifest.json").read_text())
    marts = {uid for uid, node in manifest["nodes"].items() if node["fqn"][1:2] == ["marts"]}
    for v1_table in V1_TABLES:
        reached, frontier = set(), [f"source.lifeos_migration.v1.{v1_table}"]
        while frontier:
            children = set(manifest["child_map"][frontier.pop()]) - reached
            reached |= children
            frontier += children - marts  # up to the first v2 table, not on through its foreign keys
        v2_table = "bookmarks" if v1_table == "links" else v1_table
        assert f"model.lifeos_migration.{v2_table}" in reached, v1_table


def test_undescribed_finds_a_missing_description() -> None:
    node = {"unique_id": "model.p.x", "resource_type": "model", "description": "x", "columns": {}}
    manifest = {"nodes": {"model.p.x": node}, "sources": {}}
    catalog = {"nodes": {"model.p.x": {"columns": {"ID": {}}}}, "sources": {}}
    assert undescribed(manifest, catalog) == ["model.p.x.id"]


class DevTools:
    """A page of a headless Chromium, driven over the Chrome DevTools Protocol."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self.last_id = 0

    def call(self, method: str, **params: object) -> dict[str, Any]:
        self.last_id += 1
        self.websocket.send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.websocket.recv(timeout=30))
            if message.get("id") == self.last_id:
                assert "error" not in message, message
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while not (value := self.evaluate(expression)):
            assert time.monotonic() < deadline, f"timed out waiting for: {expression}"
            time.sleep(0.25)
        return value


@pytest.fixture
def served(docs_site: Path) -> Iterator[str]:
    """The generated site served over HTTP on 127.0.0.1, on a free port."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(docs_site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    """A headless Chromium with a new, empty profile; its page as a DevTools session.

    Chromium runs in a process group of its own, which is killed and waited for afterwards; its profile is in
    tmp_path, which pytest removes in a later session, never while a helper process may still write to it.
    """
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed (scripts/test installs it)"
    profile = tmp_path / "chromium-profile"
    process = subprocess.Popen(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            assert process.poll() is None and time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.1)
        port = port_file.read_text().splitlines()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
            page = next(t for t in json.load(response) if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None) as websocket:
            yield DevTools(websocket)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def test_lineage_graph_for_tasks_renders_from_source_to_mart(served: str, browser: DevTools) -> None:
    # twice the pixels of the page: docs/docs-site.md shows the picture at about half its width
    browser.call("Emulation.setDeviceMetricsOverride", width=1600, height=800, deviceScaleFactor=2, mobile=False)
    browser.call("Page.navigate", url=f"{served}/#!/model/model.lifeos_migration.tasks")
    # the model page's lineage launcher, then its full-screen view (selection +tasks+)
    browser.wait_for("document.querySelector('[ng-click=\"onLauncherClick()\"]')")
    browser.evaluate("document.querySelector('[ng-click=\"onLauncherClick()\"]').click()")
    browser.wait_for("document.querySelector('[ng-click=\"showExpanded()\"]')")
    browser.evaluate("document.querySelector('[ng-click=\"showExpanded()\"]').click()")
    # the upstream lineage only (+tasks): +tasks+ adds every table with a key to tasks, too small to read
    browser.wait_for("document.getElementById('submit-graph-selection')")
    browser.evaluate("""
        (() => {
            const select = document.querySelector('input[ng-model="selectorService.selection.dirty.include"]');
            select.value = '+tasks';
            select.dispatchEvent(new Event('input'));
            document.getElementById('submit-graph-selection').click();
        })()
    """)
    visible_nodes = """
        (() => {
            const container = Array.from(document.querySelectorAll('[class*=cytoscape_container]')).pop();
            const graph = container && container._cyreg && container._cyreg.cy;
            if (!graph) return null;
            const nodes = graph.nodes(':visible').map(n => n.data('resource_type') + ' ' + n.data('label'));
            return nodes.includes('source v1.tasks') && !nodes.includes('model search_index') ? nodes : null;
        })()
    """
    nodes = browser.wait_for(visible_nodes)
    assert {"source v1.tasks", "model stg_v1__tasks", "model int_tasks", "model tasks"} <= set(nodes)
    time.sleep(1)  # let the layout animation settle before the picture
    SCREENSHOT.parent.mkdir(exist_ok=True)
    SCREENSHOT.write_bytes(base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"]))
