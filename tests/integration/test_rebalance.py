"""Membership changes move only the shard-replicas the new plan moves (bounded loads: a node that
joins takes its share, no more than plain HRW would move), zones spread every shard's replicas,
and a rebuilt replica equals its peers exactly, though its shard's history holds partial updates,
deletes, a delete-by-filter and settings changes. Reads never fail meanwhile. verify finds a
divergent replica and repairs it; a dead node removed by force is rebuilt elsewhere from the log."""
import math
import json
import os
import signal
import threading
import time

import pytest

from conftest import (NODE_KEY, SAMPLE, ExtraNode, Http, hrw_target, miroirctl, node_urls, node_wait_task, pid_of,
                      placement_of, replica_documents, settled, shard_of, storage_of, wait_until)

INDEX = "moves"
SHARDS = 8
RF = 2


class Searcher(threading.Thread):
    """Searches without pause until stopped, counting the failures."""

    def __init__(self, gw, index, body):
        super().__init__(daemon=True)
        self.gw, self.index, self.body = gw, index, body
        self.ok = self.failed = 0
        self.errors = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                status, found = self.gw.post(f"/indexes/{self.index}/search", self.body)
            except Exception as e:  # noqa: BLE001 - a failed search is what we count
                status, found = 0, repr(e)
            if status == 200:
                self.ok += 1
            else:
                self.failed += 1
                self.errors.append((status, found))
            time.sleep(0.02)

    def finish(self):
        self.stop.set()
        self.join(30)


class Churn(threading.Thread):
    """Creates and deletes small indexes without pause, as an SDK suite's fixtures do, so that
    most rebalancer passes have some placement to write."""

    def __init__(self, gw):
        super().__init__(daemon=True)
        self.gw, self.rounds = gw, 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            uid = f"churn-{self.rounds % 4}"
            self.gw.post("/indexes", {"uid": uid, "primaryKey": "id", "shards": 2})
            self.gw.req("DELETE", f"/indexes/{uid}")
            self.rounds += 1
            time.sleep(0.1)

    def finish(self):
        self.stop.set()
        self.join(30)


@pytest.fixture(scope="module")
def history(moving_cluster):
    """Index `moves` with a history that a naive replay of a compacted log would get wrong;
    returns the documents every replica must hold."""
    gw = moving_cluster["gateway"]
    docs = {}
    with open(SAMPLE) as f:
        for line in f:
            d = json.loads(line)
            docs[str(d["id"])] = d
            if len(docs) == 3000:
                break
    status, task = gw.post("/indexes", {"uid": INDEX, "primaryKey": "id", "shards": SHARDS, "replicationFactor": RF})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    body = "\n".join(json.dumps(d) for d in docs.values())
    status, task = gw.post(f"/indexes/{INDEX}/documents", raw=body, ctype="application/x-ndjson")
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, task = gw.req("PATCH", f"/indexes/{INDEX}/settings", {"filterableAttributes": ["registry", "month"]})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    # partial updates: a replay of only these would lose every other field
    ids = sorted(docs)[:400]
    status, task = gw.req("PUT", f"/indexes/{INDEX}/documents", [{"id": docs[i]["id"], "note": "patched"} for i in ids])
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    for i in ids:
        docs[i]["note"] = "patched"
    gone = sorted(docs)[400:600]
    status, task = gw.post(f"/indexes/{INDEX}/documents/delete-batch", [docs[i]["id"] for i in gone])
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    for i in gone:
        del docs[i]
    status, task = gw.post(f"/indexes/{INDEX}/documents/delete", {"filter": "registry = npm AND month < '2022-01'"})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    docs = {k: d for k, d in docs.items() if not (d["registry"] == "npm" and d["month"] < "2022-01")}
    status, task = gw.req("PATCH", f"/indexes/{INDEX}/settings", {"searchableAttributes": ["name", "summary"]})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    return docs


def check_replicas(cluster, docs, nodes):
    """Placement is the target, on nodes, within the bound of ceil(S*RF/N) replicas a node; every
    replica ready, each holding exactly docs."""
    gw = cluster["gateway"]
    urls = node_urls(gw)
    count = {n: 0 for n in nodes}
    for s in placement_of(gw, INDEX):
        holders = {r["node"] for r in s["replicas"]}
        assert holders == set(s["target"]) and holders <= set(nodes) and len(holders) == RF, s
        for node in holders:
            count[node] += 1
        assert all(r["state"] == "ready" for r in s["replicas"]), s
        want = {k: d for k, d in docs.items() if shard_of(k, SHARDS) == s["shard"]}
        for node in holders:
            got = replica_documents(urls[node], f"{storage_of(gw, INDEX)}__s{s['shard']}")
            assert got == want, f"shard {s['shard']} on {node} differs"
    assert max(count.values()) <= math.ceil(SHARDS * RF / len(nodes)), count


@pytest.fixture(scope="module")
def n4(moving_cluster):
    node = ExtraNode(moving_cluster["state"], "n4", 25704)
    try:
        yield node
    finally:
        node.close()


def test_add_node_moves_only_its_share(moving_cluster, history, n4):
    gw = moving_cluster["gateway"]
    before = {(s["shard"], r["node"]) for s in placement_of(gw, INDEX) for r in s["replicas"]}
    four = ["n1", "n2", "n3", "n4"]
    # what plain HRW would move for this join: the slots n4 enters, on average S*RF/(N+1)
    hrw = {(s, n) for s in range(SHARDS) for n in hrw_target(storage_of(gw, INDEX), s, four, RF)}
    hrw_moves = len(hrw - before)

    n4.start()
    searcher = Searcher(gw, INDEX, {"q": "react", "limit": 5})
    searcher.start()
    # writes go on during the move; they must reach the new replicas too
    live = {str(9_000_000 + i): {"id": 9_000_000 + i, "registry": "npm", "name": f"live-{i}", "month": "2026-01"}
            for i in range(300)}
    try:
        result = miroirctl(moving_cluster, "add-node", "n4", n4.url)
        assert result.returncode == 0, result.stderr
        for chunk in range(0, 300, 50):
            batch = list(live.values())[chunk:chunk + 50]
            status, task = gw.post(f"/indexes/{INDEX}/documents", batch)
            assert status == 202
        wait = miroirctl(moving_cluster, "wait", "--timeout", "240")
        assert wait.returncode == 0, wait.stderr
        assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    finally:
        searcher.finish()
    history.update(live)
    wait_until("the moved replicas to settle", lambda: settled(gw, INDEX), 120)

    after = {(s["shard"], r["node"]) for s in placement_of(gw, INDEX) for r in s["replicas"]}
    moved = after - before
    print(f"\nadd n4 to 3 nodes, S={SHARDS} RF={RF}: {len(moved)} shard-replicas moved, HRW would move "
          f"{hrw_moves} (on average {SHARDS * RF / 4:.0f}); searches {searcher.ok} ok, {searcher.failed} failed")
    # n4 takes its share and no more: every move lands on it, within 1.2× what HRW moves on average
    assert all(node == "n4" for _, node in moved), moved
    assert len(moved) == math.ceil(SHARDS * RF / 4) and len(moved) <= 1.2 * SHARDS * RF / 4
    assert searcher.failed == 0, searcher.errors[:3]
    check_replicas(moving_cluster, history, four)
    # the old copies were dropped from the nodes that gave them up
    urls = node_urls(gw)
    for shard, node in before - after:
        status, _ = Http(urls[node], NODE_KEY).get(f"/indexes/{storage_of(gw, INDEX)}__s{shard}")
        assert status == 404, (shard, node)
    result = miroirctl(moving_cluster, "verify", INDEX)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"consistent {SHARDS}, divergent 0" in result.stdout


def corrupt_replica(gw, shard):
    """Writes an intruder into the first replica of shard behind Miroir's back; returns its
    node's id and a client for it."""
    urls = node_urls(gw)
    victim = placement_of(gw, INDEX)[shard]["replicas"][0]["node"]
    node = Http(urls[victim], NODE_KEY)
    status, t = node.post(f"/indexes/{storage_of(gw, INDEX)}__s{shard}/documents", [{"id": "intruder", "name": "x"}])
    node_wait_task(node, t["taskUid"])
    return victim, node


def zones_of(gw):
    return {n["id"]: n.get("zone") for n in gw.get("/_miroir/nodes")[1]["results"]}


def test_zones_spread_every_shard(moving_cluster, history, n4):
    """Four nodes in two zones: every shard gets a replica in each, moved there by the rebalancer
    with the usual guarantees, and /health says no shard shares a zone. Clearing the zones moves
    nothing."""
    gw = moving_cluster["gateway"]
    zones = {"n1": "rack-a", "n2": "rack-b", "n3": "rack-a", "n4": "rack-b"}
    urls = node_urls(gw)
    searcher = Searcher(gw, INDEX, {"q": "react", "limit": 5})
    searcher.start()
    try:
        for node, zone in zones.items():
            result = miroirctl(moving_cluster, "add-node", "--zone", zone, node, urls[node])
            assert result.returncode == 0, result.stderr
        assert zones_of(gw) == zones

        def spread():
            return all(sorted(zones[r["node"]] for r in s["replicas"]) == ["rack-a", "rack-b"]
                       for s in placement_of(gw, INDEX))
        assert miroirctl(moving_cluster, "wait", "--timeout", "240").returncode == 0
        wait_until("the zoned placement", lambda: settled(gw, INDEX) and spread(), 120)
    finally:
        searcher.finish()
    assert searcher.failed == 0, searcher.errors[:3]
    for s in placement_of(gw, INDEX):
        assert sorted(zones[r["node"]] for r in s["replicas"]) == ["rack-a", "rack-b"], s
        assert s["zonesShared"] is False
    health = gw.get("/health", detail="true")[1]
    assert health["zonesSharedShards"] == [] and "zonesShared" not in gw.get("/health")[1]
    assert "ZONE" in miroirctl(moving_cluster, "status").stdout
    check_replicas(moving_cluster, history, ["n1", "n2", "n3", "n4"])
    before = {(s["shard"], r["node"]) for s in placement_of(gw, INDEX) for r in s["replicas"]}
    for node in zones:
        status, _ = gw.post("/_miroir/nodes", {"id": node, "url": urls[node], "zone": None})
        assert status == 202
    wait_until("the plan for zoneless nodes", lambda: all(z is None for z in zones_of(gw).values()), 30)
    time.sleep(2)  # a few rebalancer passes: nothing should move
    assert {(s["shard"], r["node"]) for s in placement_of(gw, INDEX) for r in s["replicas"]} == before


def test_verify_finds_and_repairs_a_divergent_replica(moving_cluster, history):
    gw = moving_cluster["gateway"]
    victim, node = corrupt_replica(gw, 3)
    result = miroirctl(moving_cluster, "verify", INDEX)
    assert result.returncode == 1
    assert "divergent 1" in result.stdout and f"{victim}=" in result.stdout

    result = miroirctl(moving_cluster, "verify", "--repair", INDEX)
    assert "(rebuilding)" in result.stdout, result.stdout
    wait_until("the rebuild to start", lambda: not settled(gw, INDEX), 20, 0.05)
    assert miroirctl(moving_cluster, "wait", "--timeout", "120").returncode == 0
    wait_until("the rebuilt replica to settle", lambda: settled(gw, INDEX), 120)
    assert node.get(f"/indexes/{storage_of(gw, INDEX)}__s3/documents/intruder")[0] == 404
    check_replicas(moving_cluster, history, ["n1", "n2", "n3", "n4"])
    assert miroirctl(moving_cluster, "verify", INDEX).returncode == 0


def test_a_stalled_rebuild_is_reported(moving_cluster, history):
    """With ingest frozen, a replica being rebuilt cannot advance: the rebalancer names it in a
    warning within rebuild_stall_warn_ms, and the rebuild completes once ingest runs again."""
    gw = moving_cluster["gateway"]
    victim, node = corrupt_replica(gw, 5)
    log = os.path.join(moving_cluster["state"], "logs", "rebalancer.log")
    workers = [pid_of(moving_cluster, name) for name in ("ingest1", "ingest2")]
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    try:
        result = miroirctl(moving_cluster, "verify", "--repair", INDEX)
        assert "(rebuilding)" in result.stdout, result.stdout
        warning = f'building {INDEX} shard 5 on {victim} has been at 0/'
        wait_until("the stalled rebuild's warning", lambda: warning in open(log).read(), 30, 0.5)
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
    assert miroirctl(moving_cluster, "wait", "--timeout", "120").returncode == 0
    wait_until("the rebuilt replica to settle", lambda: settled(gw, INDEX), 120)
    assert node.get(f"/indexes/{storage_of(gw, INDEX)}__s5/documents/intruder")[0] == 404
    assert miroirctl(moving_cluster, "verify", INDEX).returncode == 0


def test_drain_then_remove_a_node(moving_cluster, history, n4):
    """The node leaves though other indexes keep being created and deleted meanwhile (a node was
    let go only after a rebalancer pass that wrote no placement at all)."""
    gw = moving_cluster["gateway"]
    searcher = Searcher(gw, INDEX, {"q": "vue", "limit": 3, "filter": "registry = npm"})
    churn = Churn(gw)
    searcher.start()
    churn.start()
    try:
        result = miroirctl(moving_cluster, "remove-node", "--wait", "--timeout", "240", "n4")
        assert result.returncode == 0, result.stderr
    finally:
        searcher.finish()
        churn.finish()
    for k in range(4):
        gw.req("DELETE", f"/indexes/churn-{k}")
    wait_until("n4 to leave", lambda: "n4" not in {n["id"] for n in gw.get("/_miroir/nodes")[1]["results"]}, 60)
    wait_until("settled", lambda: settled(gw, INDEX), 120)
    assert searcher.failed == 0, searcher.errors[:3]
    check_replicas(moving_cluster, history, ["n1", "n2", "n3"])
    indexes = n4.http.get("/indexes")[1]["results"]
    assert not [i["uid"] for i in indexes if i["uid"].startswith(INDEX)], "n4 kept shard indexes"


def test_forced_removal_of_a_dead_node_rebuilds_from_the_log(moving_cluster, history, n4):
    gw = moving_cluster["gateway"]
    assert miroirctl(moving_cluster, "add-node", "--wait", "--timeout", "240", "n4", n4.url).returncode == 0
    wait_until("settled", lambda: settled(gw, INDEX), 120)
    n4.kill()
    searcher = Searcher(gw, INDEX, {"q": "python", "limit": 3})
    searcher.start()
    try:
        result = miroirctl(moving_cluster, "remove-node", "--force", "--wait", "--timeout", "240", "n4")
        assert result.returncode == 0, result.stderr
        wait_until("settled", lambda: settled(gw, INDEX), 120)
    finally:
        searcher.finish()
    assert searcher.failed == 0, searcher.errors[:3]
    check_replicas(moving_cluster, history, ["n1", "n2", "n3"])


def test_membership_errors(moving_cluster):
    gw = moving_cluster["gateway"]
    status, err = gw.post("/_miroir/nodes", {"id": "bad id!", "url": "http://x"})
    assert status == 400 and err["code"] == "miroir_invalid_node" and err["type"] == "invalid_request" and err["link"]
    status, err = gw.post("/_miroir/nodes", {"id": "n9", "url": "ftp://x"})
    assert status == 400 and err["code"] == "miroir_invalid_node"
    status, err = gw.post("/_miroir/nodes", raw="{", ctype="application/json")
    assert status == 400 and err["code"] in ("malformed_payload", "bad_request")
    status, err = gw.post("/_miroir/nodes/nope/drain")
    assert status == 404 and err["code"] == "miroir_node_not_found"
    status, err = gw.req("DELETE", "/_miroir/nodes/nope")
    assert status == 404 and err["code"] == "miroir_node_not_found"
    status, err = gw.post("/_miroir/verify", {"repair": "yes"})
    assert status == 400 and err["code"] == "bad_request"
    result = miroirctl(moving_cluster, "drain")
    assert result.returncode == 2 and "usage" in result.stderr
    result = miroirctl(moving_cluster, "drain", "nope")
    assert result.returncode == 1 and "miroir_node_not_found" in result.stderr
    status, err = gw.post("/_miroir/nodes", {"id": "n1", "url": "http://127.0.0.1:1", "zone": 7})
    assert status == 400 and err["code"] == "miroir_invalid_node"
    help_text = miroirctl(moving_cluster, "--help").stdout
    for command in ("status", "lag", "add-node", "drain", "remove-node", "rebalance", "verify", "wait", "--zone"):
        assert command in help_text


def test_a_copy_the_new_node_cannot_receive_is_canceled_and_replayed(moving_cluster, extra_nodes):
    """n6 sits in a network namespace: the cluster reaches it, but it cannot reach the others at
    their member URLs (127.0.0.1 is its own loopback there). When n6 leaves, its shards' new
    replicas are filled from a copy of n6, the only replica: Meilisearch would retry that export
    for 15 minutes with n6's writes held. It is canceled once it has sent nothing for a while,
    and the replica replays the log instead."""
    gw = moving_cluster["gateway"]
    docs = []
    with open(SAMPLE) as f:
        for line in f:
            docs.append(json.loads(line))
            if len(docs) == 6000:
                break
    status, task = gw.post("/indexes", {"uid": "faraway", "primaryKey": "id", "shards": 4, "replicationFactor": 1})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, task = gw.post("/indexes/faraway/documents", docs)
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    n6 = extra_nodes("n6", 7700, netns={"name": "mrfar", "subnet": "10.78.0"})
    n6.start()
    try:
        assert miroirctl(moving_cluster, "add-node", "--wait", "--timeout", "240", "n6", n6.url).returncode == 0
        on_n6 = [s["shard"] for s in placement_of(gw, "faraway") if s["replicas"][0]["node"] == "n6"]
        assert on_n6, placement_of(gw, "faraway")
        started = time.monotonic()
        result = miroirctl(moving_cluster, "remove-node", "--wait", "--timeout", "240", "n6")
        assert result.returncode == 0, result.stderr
        took = time.monotonic() - started
    finally:
        miroirctl(moving_cluster, "remove-node", "--force", "n6")
    wait_until("settled", lambda: settled(gw, "faraway"), 120)
    exports = n6.http.get("/tasks", types="export")[1]["results"]
    assert exports and all(t["status"] == "canceled" for t in exports), exports
    logs = "".join(open(os.path.join(moving_cluster["state"], "logs", f"ingest{i}.log")).read() for i in (1, 2))
    assert "sent this node nothing" in logs
    assert took < 200
    status, stats = gw.get("/indexes/faraway/stats")
    assert status == 200 and stats["numberOfDocuments"] == len(docs), stats
    for d in docs[::500]:
        assert gw.get(f"/indexes/faraway/documents/{d['id']}")[1] == d
    status, task = gw.req("DELETE", "/indexes/faraway")
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
