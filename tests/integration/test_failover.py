"""A Meilisearch node dies while reads and writes go on: searches fail over without an error,
writes are applied to the live replicas and their tasks succeed, and the node catches up from
its own offsets when it returns. The node is restarted whatever happens."""
import os
import signal
import subprocess
import time

from conftest import ROOT, node_urls, pid_of, placement_of, replica_documents, settled, shard_of, storage_of, wait_until

INDEX = "failover"
SHARDS = 3
VICTIM = "n2"


def placement(gw):
    topo = gw.get("/_miroir/topology")[1]
    return next(i for i in topo["indexes"] if i["uid"] == INDEX)["placement"]


def test_a_hung_node_stays_down_until_it_answers(cluster):
    """A stopped process still accepts connections, so each health check of it takes the whole
    timeout. The node must read as down from its first failed check until one passes, not come
    back up between two checks (the console then flickered, and reads paid the timeout)."""
    gw = cluster["gateway"]
    victim = "n3"

    def up():
        return next(n["up"] for n in gw.get("/_miroir/topology")[1]["nodes"] if n["id"] == victim)

    pid = pid_of(cluster, f"node{victim[1:]}")
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until("the hung node to read as down", lambda: not up(), 15, 0.1)
        samples = []
        for _ in range(50):  # 5 s: several check periods of 1 s plus a 1 s timeout
            samples.append(up())
            time.sleep(0.1)
        assert not any(samples), f"the hung node read as up in {sum(samples)} of {len(samples)} samples"
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until("the node to read as up once it answers", up, 10, 0.1)


def test_what_a_hung_node_was_sent_lands_in_order(cluster):
    """A hung node keeps every request that ingest sent it and gave up on (the kernel holds
    them), and runs them all, in any order, when it wakes: a retry with more records and an
    older one with fewer race. Partial updates then leave a field at an old value for good
    unless ingest waits for the strays to land before it sends the records again."""
    gw = cluster["gateway"]
    uid = "hung-order"
    status, task = gw.post("/indexes", {"uid": uid, "primaryKey": "id", "shards": 1, "replicationFactor": 2})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    ids = range(200)
    status, task = gw.post(f"/indexes/{uid}/documents", [{"id": i, "round": 0, "text": f"doc {i}"} for i in ids])
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    victim = placement_of(gw, uid)[0]["replicas"][1]["node"]
    pid = pid_of(cluster, f"node{victim[1:]}")
    os.kill(pid, signal.SIGSTOP)
    try:
        for r in range(1, 7):  # rounds far enough apart that each retry sends a longer batch
            status, task = gw.req("PUT", f"/indexes/{uid}/documents", [{"id": i, "round": r} for i in ids])
            assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
            time.sleep(3)
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until("the hung node to catch up", lambda: settled(gw, uid), 120, 0.5)
    time.sleep(2)  # a stray landing late would show now
    got = replica_documents(node_urls(gw)[victim], f"{storage_of(gw, uid)}__s0")
    stale = sorted(int(k) for k, d in got.items() if d["round"] != 6)
    assert not stale, f"{len(stale)} documents at an old round on {victim}, e.g. {got[str(stale[0])]}"
    assert all(d["text"] == f"doc {d['id']}" for d in got.values())
    gw.req("DELETE", f"/indexes/{uid}")


def test_node_down_then_back(cluster):
    gw = cluster["gateway"]
    status, task = gw.post("/indexes", {"uid": INDEX, "primaryKey": "id", "shards": SHARDS, "replicationFactor": 2})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    first = [{"id": i, "text": f"mirror {i} silver"} for i in range(300)]
    status, task = gw.post(f"/indexes/{INDEX}/documents", first)
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    assert any(VICTIM in [r["node"] for r in s["replicas"]] for s in placement(gw))

    os.kill(pid_of(cluster, f"node{VICTIM[1:]}"), signal.SIGKILL)
    try:
        # reads: every search answers, with every shard, from the surviving replicas
        for i in range(30):
            status, found = gw.post(f"/indexes/{INDEX}/search", {"q": "silver", "limit": 1, "offset": i})
            assert status == 200, found
            assert found["estimatedTotalHits"] == 300
        wait_until("health to turn yellow", lambda: gw.get("/health")[1]["cluster"] == "yellow", 15)
        degraded = gw.get("/health", detail="true")[1]["degradedShards"]
        assert degraded and all(d["status"] == "yellow" for d in degraded)
        assert set(gw.get("/health")[1]) == {"status", "cluster"}  # the detail is asked for
        detail = gw.get("/health", detail="true")[1]["shards"]
        assert {d["status"] for d in detail if d["index"] == INDEX} <= {"green", "yellow"}

        # writes: applied on the live replicas; the task doesn't wait for the dead node
        more = [{"id": i, "text": f"mirror {i} gold"} for i in range(300, 2300)]
        status, task = gw.post(f"/indexes/{INDEX}/documents", more)
        assert status == 202
        assert gw.wait_task(task["taskUid"], timeout=120)["status"] == "succeeded"
        status, found = gw.post(f"/indexes/{INDEX}/search", {"q": "gold", "limit": 0})
        assert found["estimatedTotalHits"] == 1000  # 2000 documents, capped at maxTotalHits
        assert gw.get(f"/indexes/{INDEX}/documents/2299")[0] == 200

        # A new index changes the ingest workers' leases, so they rebuild their replica
        # streams while the dead node's are paused in backoff: the rebuilt streams must
        # read again (librdkafka keeps a partition's pause across a re-assignment).
        status, task = gw.post("/indexes", {"uid": "failover_lease", "primaryKey": "id", "shards": 2})
        assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
        time.sleep(2)
    finally:
        subprocess.run([os.path.join(ROOT, "miroir.sh"), "start"], env=cluster["env"], cwd=ROOT, check=True)

    # the node catches up from its own offsets, then holds exactly its shards' documents
    def caught_up():
        for s in placement(gw):
            offsets = [r["appliedOffset"] for r in s["replicas"]]
            if len(set(offsets)) != 1:
                return False
        return True

    wait_until("the returning node to catch up", caught_up, 120)
    wait_until("health to turn green", lambda: gw.get("/health")[1]["cluster"] == "green", 30)
    node = cluster["nodes"][VICTIM]
    for s in placement(gw):
        if VICTIM not in [r["node"] for r in s["replicas"]]:
            continue
        status, page = node.get(f"/indexes/{storage_of(gw, INDEX)}__s{s['shard']}/documents", limit=5000, fields="id")
        assert status == 200
        ids = {d["id"] for d in page["results"]}
        assert ids == {i for i in range(2300) if shard_of(i, SHARDS) == s["shard"]}


def test_broker_down_means_no_acknowledgement(cluster):
    """With Kafka gone, a write answers 503 and nothing is acknowledged; searches go on; as soon as
    the broker is back, writes are accepted and applied again."""
    gw = cluster["gateway"]
    status, task = gw.post("/indexes", {"uid": "broker_down", "primaryKey": "id", "shards": 2})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, task = gw.post("/indexes/broker_down/documents", [{"id": 1, "t": "before"}])
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"

    os.kill(pid_of(cluster, "kafka"), signal.SIGKILL)
    try:
        status, err = gw.post("/indexes/broker_down/documents", [{"id": 2, "t": "during"}])
        assert (status, err["code"]) == (503, "miroir_kafka_unavailable"), err
        assert set(err) == {"message", "code", "type", "link"}
        status, found = gw.post("/indexes/broker_down/search", {"q": "before"})
        assert status == 200 and [h["id"] for h in found["hits"]] == [1]
        time.sleep(10)  # long enough for librdkafka's reconnect backoff to reach its maximum
    finally:
        subprocess.run([os.path.join(ROOT, "miroir.sh"), "start"], env=cluster["env"], cwd=ROOT, check=True)

    # The gateway's metadata consumer tried all along; it must be back within a second or two
    # of the broker, not after librdkafka's default backoff (up to 15 s, which outlasts the
    # gateway's own wait for the record to come back and turned this into a 503).
    started = time.monotonic()
    status, task = gw.post("/indexes", {"uid": "broker_back", "primaryKey": "id"})
    assert status == 202, task
    assert time.monotonic() - started < 5

    def write_accepted():
        status, task = gw.post("/indexes/broker_down/documents", [{"id": 3, "t": "after"}])
        return task if status == 202 else None

    task = wait_until("writes to be accepted again", write_accepted, 30, interval=0.5)
    assert gw.wait_task(task["taskUid"], timeout=120)["status"] == "succeeded"
    assert gw.get("/indexes/broker_down/documents/3")[0] == 200
    # the refused write was never acknowledged, and never applied
    assert gw.get("/indexes/broker_down/documents/2")[0] == 404
