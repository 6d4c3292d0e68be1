"""Fixtures that run a real Miroir cluster: Kafka (KRaft), Meilisearch nodes, ingest and gateway,
started through miroir.sh on ports of their own, plus one plain Meilisearch node as a baseline.
Everything started here is stopped here."""
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource
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


def miroir_env(state, kafka=KAFKA_PORT, gateway=GATEWAY_PORT, node_base=NODE_PORT_BASE, ingest=1, extra="",
               master_key="", kafka_extra=""):
    env = dict(os.environ)
    env.update(
        MIROIR_STATE=state,
        MIROIR_BUILD=BUILD,
        MIROIR_KAFKA_PORT=str(kafka),
        MIROIR_GATEWAY_PORT=str(gateway),
        MIROIR_NODE_PORT_BASE=str(node_base),
        MIROIR_NODE_COUNT="3",
        MIROIR_INGEST_COUNT=str(ingest),
        MIROIR_NODE_KEY=NODE_KEY,
        MIROIR_MASTER_KEY=master_key,
        # a dead broker must turn into a 503 within the tests' patience
        MIROIR_EXTRA_CONFIG=f"max_body_bytes = {MAX_BODY}\nproduce_timeout_ms = 4000\n{extra}",
        MIROIR_KAFKA_EXTRA_CONFIG=kafka_extra,
        # sanitizer builds: report, don't abort the daemons on exit-time leaks inside libraries
        ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
    )
    return env


def daemon_logs(state):
    """(name, text) of the logs of Miroir's own daemons in a state directory."""
    logs = os.path.join(state, "logs")
    for name in sorted(os.listdir(logs)) if os.path.isdir(logs) else []:
        if name.startswith(("gateway", "ingest", "rebalancer")):
            with open(os.path.join(logs, name), errors="replace") as f:
                yield name, f.read()


def sanitizer_reports(state):
    found = []
    for name, text in daemon_logs(state):
        for marker in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
            if marker in text:
                start = text.index(marker)
                found.append(f"{name}: {text[start:start + 2000]}")
    return found


# The clusters running now, state directory -> gateway URL: a failing test's report carries
# their logs, so that a failure on CI (where the directories are gone afterwards) can be read.
RUNNING_STATES = {}
# CI shows only the tail of the output: miroir.sh prints this digest of the failures last.
FAILURE_DIGEST = os.path.join(BUILD, "integration-failures.txt")


def daemon_log_tails(state, lines=40):
    out = []
    for name, text in daemon_logs(state):
        # the access log says little about why something stalled
        kept = [line for line in text.splitlines(keepends=True) if "request_id=" not in line]
        out.append(f"--- {name} (last {lines} lines, access log left out)\n" + "".join(kept[-lines:]))
    return "\n".join(out)


def unsettled_replicas(gateway_url):
    """The replicas of a cluster that are not ready or not caught up, in one short line."""
    try:
        r = requests.get(gateway_url + "/_miroir/topology", timeout=3)
        if r.status_code != 200:
            return f"topology: HTTP {r.status_code}"
        topo = r.json()
    except (requests.RequestException, ValueError) as e:
        return f"topology unreadable: {e.__class__.__name__}"
    out = [f"{ix['uid']}/s{s['shard']}@{r['node']}:{r['state']},lag={r.get('lag')}"
           for ix in topo.get("indexes", []) for s in ix["placement"] for r in s["replicas"]
           if r["state"] != "ready" or r.get("lag", 0) != 0]
    return " ".join(out) or "all replicas ready and caught up"


def digest_of_failure(item, call):
    lines = [f"FAILED {item.nodeid}: {call.excinfo.exconly().splitlines()[0][:300]}"]
    for state, gateway_url in RUNNING_STATES.items():
        lines.append(f"  {os.path.basename(state)}: {unsettled_replicas(gateway_url)[:400]}")
        for name, text in daemon_logs(state):
            worst = [line for line in text.splitlines() if "level=warn" in line or "level=error" in line]
            lines += [f"  {name}: {line[:300]}" for line in worst[-2:]]
    return "\n".join(lines) + "\n"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.excinfo:
        with open(FAILURE_DIGEST, "a") as f:
            f.write(digest_of_failure(item, call))
    if report.when == "call" and report.failed:
        for state in RUNNING_STATES:
            report.sections.append((f"daemon logs in {state}", daemon_log_tails(state)))


def pytest_sessionstart(session):
    if os.path.exists(FAILURE_DIGEST):
        os.remove(FAILURE_DIGEST)


def assert_not_ephemeral(*ports):
    """A port in the kernel's ephemeral range can be held at any moment as the local end of some
    client's connection, and then a daemon started on it cannot bind: tests listen below it."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        lo, hi = map(int, f.read().split())
    inside = [p for p in ports if lo <= p <= hi]
    assert not inside, f"ports {inside} are in the ephemeral range {lo}-{hi}"


def pid_of(cluster, name):
    """The pid of a process miroir.sh started in cluster: kafka, gateway, nodeN, ingestN, rebalancer."""
    with open(os.path.join(cluster["state"], "pids", f"{name}.pid")) as f:
        return int(f.read())


@contextlib.contextmanager
def running_cluster(prefix="miroir-it-", kafka=KAFKA_PORT, gateway=GATEWAY_PORT, node_base=NODE_PORT_BASE, **kw):
    """A cluster started through miroir.sh in a state directory of its own, stopped on exit."""
    assert_not_ephemeral(kafka, kafka + 1, gateway, *range(node_base, node_base + 3))
    state = tempfile.mkdtemp(prefix=prefix)
    env = miroir_env(state, kafka, gateway, node_base, **kw)
    started = subprocess.run([os.path.join(ROOT, "miroir.sh"), "start"], env=env, cwd=ROOT)
    RUNNING_STATES[state] = f"http://{HOST}:{gateway}"
    try:
        assert started.returncode == 0, "miroir.sh start failed; logs in " + state
        yield {"state": state, "env": env, "gateway": Http(f"http://{HOST}:{gateway}"),
               "nodes": {f"n{i}": Http(f"http://{HOST}:{node_base + i - 1}", NODE_KEY) for i in (1, 2, 3)},
               "kafka": f"{HOST}:{kafka}", "gateway_url": f"http://{HOST}:{gateway}"}
    finally:
        del RUNNING_STATES[state]
        subprocess.run([os.path.join(ROOT, "miroir.sh"), "down"], env=env, cwd=ROOT)
        reports = sanitizer_reports(state)
        if os.environ.get("MIROIR_KEEP_STATE") or reports:
            print(f"state kept in {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)
        assert not reports, "sanitizer reports:\n" + "\n".join(reports)


@pytest.fixture(scope="session")
def cluster():
    with running_cluster() as c:
        yield c


@pytest.fixture(scope="session")
def baseline():
    """One plain Meilisearch node holding every document: what a user would run without Miroir."""
    d = tempfile.mkdtemp(prefix="miroir-baseline-")
    proc = subprocess.Popen([MEILI, "--http-addr", f"{HOST}:{BASELINE_PORT}", "--master-key", NODE_KEY,
                             "--db-path", os.path.join(d, "data"), "--no-analytics"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        node = Http(f"http://{HOST}:{BASELINE_PORT}", NODE_KEY)
        wait_until("baseline node", lambda: healthy(node), 30)
        yield node
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def healthy(http):
    """Whether a node or gateway answers /health with 200 (False while it is not listening)."""
    try:
        return http.get("/health")[0] == 200
    except requests.RequestException:
        return False


@contextlib.contextmanager
def extra_gateway(cluster, port, name, **settings):
    """Another gateway on the cluster, with settings of its own (MIROIR_<KEY> = value), stopped on
    exit."""
    env = dict(cluster["env"], MIROIR_CONFIG=os.path.join(cluster["state"], "miroir.conf"),
               MIROIR_GATEWAY_LISTEN=f"{HOST}:{port}", **{f"MIROIR_{k.upper()}": str(v) for k, v in settings.items()})
    log = open(os.path.join(cluster["state"], "logs", f"gateway-{name}.log"), "wb")
    proc = subprocess.Popen([os.path.join(BUILD, "gateway", "miroir-gateway")], env=env, stdout=log, stderr=log)
    gw = Http(f"http://{HOST}:{port}")
    try:
        wait_until(f"the {name} gateway", lambda: healthy(gw), 60)
        yield gw
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


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


# ---- a second cluster whose membership the tests change (rebalance and chaos tests) ----

MOVING_KAFKA_PORT = 25092
MOVING_GATEWAY_PORT = 25700
MOVING_NODE_PORT_BASE = 25701
MIROIRCTL = os.path.join(BUILD, "rebalancer", "miroirctl")


def hrw_target(storage, shard, nodes, rf):
    """The rendezvous placement, computed here independently of the C code."""
    scored = sorted(nodes, key=lambda n: xxhash.xxh64(f"{storage}/{shard}/{n}".encode(), seed=0).intdigest(),
                    reverse=True)
    return set(scored[:rf])


class ExtraNode:
    """A Meilisearch node the test starts itself, on loopback or inside a network namespace
    (then `cut` makes it unreachable while it keeps running)."""

    def __init__(self, state, name, port, netns=None):
        self.name, self.netns = name, netns
        self.dir = os.path.join(state, name)
        self.proc = None
        if netns:
            subnet = netns["subnet"]
            self.host_if, self.ns_if = f"{netns['name']}-h", f"{netns['name']}-n"
            for cmd in (f"ip netns add {netns['name']}",
                        f"ip link add {self.host_if} type veth peer name {self.ns_if}",
                        f"ip link set {self.ns_if} netns {netns['name']}",
                        f"ip addr add {subnet}.1/30 dev {self.host_if}",
                        f"ip link set {self.host_if} up",
                        f"ip netns exec {netns['name']} ip addr add {subnet}.2/30 dev {self.ns_if}",
                        f"ip netns exec {netns['name']} ip link set {self.ns_if} up",
                        f"ip netns exec {netns['name']} ip link set lo up"):
                subprocess.run(cmd.split(), check=True)
            self.addr = f"{subnet}.2:{port}"
        else:
            self.addr = f"{HOST}:{port}"
        self.url = f"http://{self.addr}"
        self.http = Http(self.url, NODE_KEY)

    def start(self):
        host, port = self.addr.rsplit(":", 1)
        with socket.socket() as probe:
            if self.netns:
                assert probe.connect_ex((host, int(port))) != 0, f"{self.addr} is already taken by another process"
            else:  # binding also finds a port held as the local end of some client's connection
                assert_not_ephemeral(int(port))
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((host, int(port)))
                except OSError as e:
                    raise AssertionError(f"{self.addr} cannot be bound: {e}") from e
        cmd = [MEILI, "--http-addr", self.addr, "--master-key", NODE_KEY, "--db-path", os.path.join(self.dir, "data"),
               "--no-analytics", "--max-indexing-memory", "1GiB"]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns["name"]] + cmd
        os.makedirs(self.dir, exist_ok=True)
        self.log = open(os.path.join(self.dir, "meilisearch.log"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(f"node {self.name}", lambda: healthy(self.http), 30)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def cut(self, off=True):
        subprocess.run(["ip", "netns", "exec", self.netns["name"], "ip", "link", "set", self.ns_if,
                        "down" if off else "up"], check=True)

    def close(self):
        self.kill()
        if self.netns:
            subprocess.run(["ip", "netns", "del", self.netns["name"]])
            subprocess.run(["ip", "link", "del", self.host_if], stderr=subprocess.DEVNULL)


@pytest.fixture
def extra_nodes(moving_cluster):
    """Nodes a test starts; each is stopped (and its namespace removed) whatever happens."""
    nodes = []

    def make(name, port, netns=None):
        node = ExtraNode(moving_cluster["state"], name, port, netns)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.close()


@pytest.fixture(scope="session")
def moving_cluster():
    """Three nodes through miroir.sh, two ingest workers, a fast rebalancer; tests add nodes."""
    with running_cluster("miroir-moving-", MOVING_KAFKA_PORT, MOVING_GATEWAY_PORT, MOVING_NODE_PORT_BASE, ingest=2,
                         extra="rebalance_interval_ms = 200\nretire_grace_ms = 500\nconnect_timeout_ms = 500\n"
                               "rebuild_stall_warn_ms = 2000") as c:
        yield c


def miroirctl(cluster, *args, timeout=300):
    return subprocess.run([MIROIRCTL, "--gateway", cluster["gateway_url"], *args], capture_output=True, text=True,
                          timeout=timeout)


def replica_documents(url, name):
    """Every document of one shard index on one node, by id, as clients see it: without the
    sequence number of its last write (`_miroir_seq`, the gateway's own field)."""
    node = Http(url, NODE_KEY)
    docs, offset = {}, 0
    while True:
        status, page = node.get(f"/indexes/{name}/documents", offset=offset, limit=5000)
        assert status == 200, (url, name, page)
        for d in page["results"]:
            d.pop("_miroir_seq", None)
            docs[str(d["id"])] = d
        if len(page["results"]) < 5000:
            return docs
        offset += 5000


def node_urls(gw):
    """Each member node's URL, by id."""
    return {n["id"]: n["url"] for n in gw.get("/_miroir/nodes")[1]["results"]}


def topic_config(cluster, topic):
    """A Kafka topic's configuration, name -> value."""
    admin = AdminClient({"bootstrap.servers": cluster["kafka"]})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return {k: v.value for k, v in admin.describe_configs([resource])[resource].result(timeout=10).items()}


def settled(gw, index):
    """True when every replica of index is ready, has applied its whole partition, waits for no
    rebuild, and sits where its shard's target is (no move left), a target planned for the
    current members."""
    topo = gw.get("/_miroir/topology")[1]
    ix = next((i for i in topo["indexes"] if i["uid"] == index), None)
    if ix is None or ix.get("planPending") or any(n["state"] == "removing" for n in topo["nodes"]):
        return False
    return all(r["state"] == "ready" and r.get("lag", 1) == 0 and not r.get("rebuildRequested")
               for s in ix["placement"] for r in s["replicas"]) and \
        all({r["node"] for r in s["replicas"]} == set(s.get("target", [r["node"] for r in s["replicas"]]))
            for s in ix["placement"])


def storage_of(gw, index):
    """The storage of an index's live incarnation: what its topic and shard indexes are named after
    (`<uid>-<generation>`; a swap exchanges them)."""
    topo = gw.get("/_miroir/topology")[1]
    return next(i for i in topo["indexes"] if i["uid"] == index)["storage"]


def placement_of(gw, index):
    topo = gw.get("/_miroir/topology")[1]
    return next(i for i in topo["indexes"] if i["uid"] == index)["placement"]
