"""Fixtures that run a real Miroir cluster: Kafka (KRaft), Meilisearch nodes, ingest and gateway,
started through miroir.sh on ports of their own, plus one plain Meilisearch node as a baseline.
Everything started here is stopped here."""
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import requests
import xxhash

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("MIROIR_BUILD", os.path.join(ROOT, "build"))
DEPS = os.environ.get("MIROIR_DEPS", os.path.join(ROOT, ".miroir", "deps"))
MEILI = os.path.join(DEPS, "npm", "node_modules", "@gaubee", "meilisearch-linux-amd64", "meilisearch")
SAMPLE = os.path.abspath(os.path.join(ROOT, "..", "shared", "data", "packages-sample.jsonl"))
HOST = "127.0.0.1"
KAFKA_PORT = 29092
GATEWAY_PORT = 27700
NODE_PORT_BASE = 27701
BASELINE_PORT = 27710
NODE_KEY = "integration-node-key-0123456789abcdef"
MAX_BODY = 4_000_000
SHARDS = 4
RF = 2


def shard_of(doc_id, shards=SHARDS):
    return xxhash.xxh64(str(doc_id).encode(), seed=0).intdigest() % shards


def wait_until(what, predicate, timeout=60, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Http:
    """A small JSON client for the gateway or a node."""

    def __init__(self, base, key=None):
        self.base = base
        self.s = requests.Session()
        if key:
            self.s.headers["Authorization"] = f"Bearer {key}"

    def req(self, method, path, body=None, raw=None, ctype=None, **params):
        headers = {}
        data = None
        if raw is not None:
            data = raw
            headers["Content-Type"] = ctype or "application/json"
        elif body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        r = self.s.request(method, self.base + path, data=data, headers=headers, params=params, timeout=60)
        try:
            payload = r.json()
        except ValueError:
            payload = None
        return r.status_code, payload

    def get(self, path, **params):
        return self.req("GET", path, **params)

    def post(self, path, body=None, **kw):
        return self.req("POST", path, body, **kw)

    def wait_task(self, uid, timeout=120):
        def done():
            status, t = self.get(f"/tasks/{uid}")
            assert status == 200, t
            return t if t["status"] in ("succeeded", "failed") else None

        return wait_until(f"task {uid}", done, timeout)


def miroir_env(state):
    env = dict(os.environ)
    env.update(
        MIROIR_STATE=state,
        MIROIR_BUILD=BUILD,
        MIROIR_KAFKA_PORT=str(KAFKA_PORT),
        MIROIR_GATEWAY_PORT=str(GATEWAY_PORT),
        MIROIR_NODE_PORT_BASE=str(NODE_PORT_BASE),
        MIROIR_NODE_COUNT="3",
        MIROIR_NODE_KEY=NODE_KEY,
        # a dead broker must turn into a 503 within the tests' patience
        MIROIR_EXTRA_CONFIG=f"max_body_bytes = {MAX_BODY}\nproduce_timeout_ms = 4000",
        # sanitizer builds: report, don't abort the daemons on exit-time leaks inside libraries
        ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
    )
    return env


def sanitizer_reports(state):
    found = []
    logs = os.path.join(state, "logs")
    for name in sorted(os.listdir(logs)) if os.path.isdir(logs) else []:
        if not name.startswith(("gateway", "ingest", "rebalancer")):
            continue
        with open(os.path.join(logs, name), errors="replace") as f:
            text = f.read()
        for marker in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
            if marker in text:
                start = text.index(marker)
                found.append(f"{name}: {text[start:start + 2000]}")
    return found


@pytest.fixture(scope="session")
def cluster():
    state = tempfile.mkdtemp(prefix="miroir-it-")
    env = miroir_env(state)
    started = subprocess.run([os.path.join(ROOT, "miroir.sh"), "start"], env=env, cwd=ROOT)
    try:
        assert started.returncode == 0, "miroir.sh start failed; logs in " + state
        yield {"state": state, "env": env, "gateway": Http(f"http://{HOST}:{GATEWAY_PORT}"),
               "nodes": {f"n{i}": Http(f"http://{HOST}:{NODE_PORT_BASE + i - 1}", NODE_KEY) for i in (1, 2, 3)},
               "kafka": f"{HOST}:{KAFKA_PORT}"}
    finally:
        subprocess.run([os.path.join(ROOT, "miroir.sh"), "down"], env=env, cwd=ROOT)
        reports = sanitizer_reports(state)
        if os.environ.get("MIROIR_KEEP_STATE") or reports:
            print(f"state kept in {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)
        assert not reports, "sanitizer reports:\n" + "\n".join(reports)


@pytest.fixture(scope="session")
def baseline():
    """One plain Meilisearch node holding every document: what a user would run without Miroir."""
    d = tempfile.mkdtemp(prefix="miroir-baseline-")
    proc = subprocess.Popen([MEILI, "--http-addr", f"{HOST}:{BASELINE_PORT}", "--master-key", NODE_KEY,
                             "--db-path", os.path.join(d, "data"), "--no-analytics"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        node = Http(f"http://{HOST}:{BASELINE_PORT}", NODE_KEY)
        wait_until("baseline node", lambda: _healthy(node), 30)
        yield node
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def _healthy(http):
    try:
        return http.get("/health")[0] == 200
    except requests.RequestException:
        return False


SETTINGS = {"filterableAttributes": ["registry", "month", "version"], "sortableAttributes": ["name", "month"]}


def node_wait_task(node, uid, timeout=120):
    def done():
        status, t = node.get(f"/tasks/{uid}")
        return t if t["status"] in ("succeeded", "failed") else None

    return wait_until(f"node task {uid}", done, timeout)


@pytest.fixture(scope="session")
def loaded(cluster, baseline):
    """The 10k sample in index `packages` (S=4, RF=2) through the gateway, and in the baseline."""
    gw = cluster["gateway"]
    with open(SAMPLE, "rb") as f:
        sample = f.read()
    status, task = gw.post("/indexes", {"uid": "packages", "primaryKey": "id", "shards": SHARDS, "replicationFactor": RF})
    assert status == 202, task
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, task = gw.req("PATCH", "/indexes/packages/settings", SETTINGS)
    assert status == 202, task
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    started = time.monotonic()
    status, task = gw.post("/indexes/packages/documents", raw=sample, ctype="application/x-ndjson")
    assert status == 202, task
    done = gw.wait_task(task["taskUid"], timeout=300)
    elapsed = time.monotonic() - started
    assert done["status"] == "succeeded", done
    docs = [json.loads(line) for line in sample.splitlines() if line.strip()]
    print(f"\nsample load: {len(docs)} docs applied on {RF} replicas in {elapsed:.1f}s "
          f"({len(docs) / elapsed:.0f} docs/s)")

    status, t = baseline.post("/indexes", {"uid": "packages", "primaryKey": "id"})
    node_wait_task(baseline, t["taskUid"])
    status, t = baseline.req("PATCH", "/indexes/packages/settings", SETTINGS)
    node_wait_task(baseline, t["taskUid"])
    status, t = baseline.post("/indexes/packages/documents", raw=sample, ctype="application/x-ndjson")
    assert node_wait_task(baseline, t["taskUid"])["status"] == "succeeded"
    return {"docs": docs, "by_id": {d["id"]: d for d in docs}}
