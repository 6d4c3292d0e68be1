"""Placement with bounded loads on a real cluster: a 3-node cluster never puts every shard of an
index (S=4, RF=2) on one node, where plain rendezvous hashing did for about half of all names;
the capacity the nodes' stats report is shown; and an index placed by plain rendezvous hashing,
as before, moves to the bounded placement through the rebalancer with its documents intact and
searches answering throughout."""
import json
import math
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from conftest import extra_gateway, hrw_target, miroirctl, placement_of, settled, storage_of, wait_until

NODES = ["n1", "n2", "n3"]


def per_node(placement):
    count = {n: 0 for n in NODES}
    for s in placement:
        for r in s["replicas"]:
            count[r["node"]] += 1
    return count


def test_three_nodes_never_hold_a_whole_index(cluster):
    """Twelve indexes of the default size: each node holds at most ceil(4*2/3) = 3 of an index's 8
    replicas, replicas sit where their targets are, and HRW would have put a whole index on one
    node for several of these very names."""
    gw = cluster["gateway"]
    names = [f"spread-{i}" for i in range(12)]
    tasks = [gw.post("/indexes", {"uid": n, "primaryKey": "id", "shards": 4, "replicationFactor": 2})[1]["taskUid"]
             for n in names]
    for t in tasks:
        assert gw.wait_task(t)["status"] == "succeeded"
    whole_by_hrw = 0
    try:
        for n in names:
            placement = placement_of(gw, n)
            count = per_node(placement)
            assert max(count.values()) <= math.ceil(4 * 2 / 3), (n, count)
            for s in placement:
                assert {r["node"] for r in s["replicas"]} == set(s["target"]), (n, s)
                assert len({r["node"] for r in s["replicas"]}) == 2
            storage = storage_of(gw, n)
            hrw = {node: sum(node in hrw_target(storage, s, NODES, 2) for s in range(4)) for node in NODES}
            whole_by_hrw += max(hrw.values()) == 4
        print(f"\n12 indexes S=4 RF=2 on 3 nodes: HRW would have put a whole index on one node for {whole_by_hrw}")
        assert whole_by_hrw > 0  # the names are ordinary: plain HRW did this to some of them
        topo = gw.get("/_miroir/topology")[1]
        assert topo["capacity"]["replicas"]["maxOverMean"] <= 1.2, topo["capacity"]
    finally:
        for n in names:
            gw.req("DELETE", f"/indexes/{n}")


def test_capacity_is_shown(cluster):
    """Each node's replica count and bytes (from its /stats) and the fullest against the mean, in
    the topology and in `miroirctl status`."""
    gw = cluster["gateway"]
    status, task = gw.post("/indexes", {"uid": "measured", "primaryKey": "id", "shards": 3, "replicationFactor": 2})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"

    def measured():  # the gateway reads the nodes' /stats every few seconds
        nodes = gw.get("/_miroir/topology")[1]["nodes"]
        return all(n.get("bytes") == cluster["nodes"][n["id"]].get("/stats")[1]["databaseSize"] for n in nodes)
    wait_until("the nodes' sizes as their /stats say", measured, 30, 0.5)
    topo = gw.get("/_miroir/topology")[1]
    cap = topo["capacity"]
    assert cap["replicas"]["max"] >= cap["replicas"]["mean"] > 0
    assert cap["bytes"]["maxOverMean"] >= 1
    out = miroirctl(cluster, "status").stdout
    assert "ZONE" in out and "BYTES" in out and "fullest node / mean: " in out and "× by replicas" in out, out
    gw.req("DELETE", "/indexes/measured")


def legacy_name():
    """A uid whose first incarnation plain HRW puts wholly on one node at S=4, RF=2."""
    for i in range(1000):
        uid = f"legacy-{i}"
        storage = f"{uid}-1"
        hrw = {node: sum(node in hrw_target(storage, s, NODES, 2) for s in range(4)) for node in NODES}
        if max(hrw.values()) == 4:
            return uid, storage
    raise AssertionError("no such name")


def read_definition(kafka, uid):
    """The last index/<uid> record of miroir.meta."""
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": f"probe-{time.time()}", "enable.auto.commit": False})
    consumer.assign([TopicPartition("miroir.meta", 0, OFFSET_BEGINNING)])
    _, end = consumer.get_watermark_offsets(TopicPartition("miroir.meta", 0))
    found = None
    try:
        while True:
            msg = consumer.poll(5)
            assert msg is not None, "miroir.meta ended early"
            if msg.error() is None and msg.key() == f"index/{uid}".encode() and msg.value():
                found = json.loads(msg.value())
            if msg.offset() >= end - 1:
                return found
    finally:
        consumer.close()


def test_an_index_placed_by_plain_hrw_moves_to_the_bounded_placement(cluster):
    """An index as an earlier Miroir placed it, by plain HRW with every shard on one node and no
    targets, is planned anew by the rebalancer and moved, with the usual guarantees: searches
    answer throughout, every document stays, the replicas agree."""
    gw = cluster["gateway"]
    uid, storage = legacy_name()
    # RF=3 first, so that every node holds every shard; then the definition is rewritten as the
    # old placement would have had it: RF=2 on the HRW nodes, no targets
    status, task = gw.post("/indexes", {"uid": uid, "primaryKey": "id", "shards": 4, "replicationFactor": 3})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    assert storage_of(gw, uid) == storage
    docs = [{"id": i, "title": f"legacy {i}"} for i in range(400)]
    status, task = gw.post(f"/indexes/{uid}/documents", docs)
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    record = read_definition(cluster["kafka"], uid)
    live = record["live"]
    assert live["plannedFor"] and live["target"]
    live.pop("plannedFor")
    live.pop("target")
    live["replicationFactor"] = 2
    live["placement"] = [[{"node": n, "state": "ready", "incarnation": 0}
                          for n in sorted(hrw_target(storage, s, NODES, 2))] for s in range(4)]
    producer = Producer({"bootstrap.servers": cluster["kafka"], "enable.idempotence": True, "acks": "all"})
    producer.produce("miroir.meta", key=f"index/{uid}", value=json.dumps(record))
    assert producer.flush(10) == 0

    failures, searches = [], [0]
    stop = threading.Event()

    def search():
        while not stop.is_set():
            status, found = gw.post(f"/indexes/{uid}/search", {"q": "legacy", "limit": 1})
            searches[0] += 1
            if status != 200 or found["estimatedTotalHits"] != 400:
                failures.append((status, found))
            time.sleep(0.02)

    searcher = threading.Thread(target=search, daemon=True)
    searcher.start()
    try:
        wait_until("the old placement to be read", lambda: max(per_node(placement_of(gw, uid)).values()) == 4, 30)
        wait_until("the move to the bounded placement",
                   lambda: settled(gw, uid) and max(per_node(placement_of(gw, uid)).values()) <= 3, 180, 0.5)
    finally:
        stop.set()
        searcher.join(30)
    placement = placement_of(gw, uid)
    print(f"\n{uid}: HRW put every shard on one node; now {per_node(placement)}; "
          f"{searches[0]} searches, {len(failures)} failed")
    assert not failures, failures[:3]
    for s in placement:
        assert {r["node"] for r in s["replicas"]} == set(s["target"]) and len(s["replicas"]) == 2
    status, page = gw.get(f"/indexes/{uid}/documents", limit=1000)
    assert sorted(d["id"] for d in page["results"]) == list(range(400))
    status, verdict = gw.post("/_miroir/verify", {"indexes": [uid]})
    assert verdict["summary"]["consistent"] == 4, verdict
    gw.wait_task(gw.req("DELETE", f"/indexes/{uid}")[1]["taskUid"])


def test_nodes_holding_more_indexes_than_a_node_keeps_open_are_named(cluster):
    """/health?detail=true names the nodes holding more shard indexes than node_open_indexes: a
    Meilisearch node keeps about 18 indexes open, so one searched across more of them reopens
    indexes all the time, and under concurrent searches its HTTP workers can wait on each other
    for good (operations.md). A gateway told that nodes keep fewer open names every node above."""
    main = cluster["gateway"]
    status, task = main.post("/indexes", {"uid": "crowding", "shards": 4, "replicationFactor": 2})
    assert main.wait_task(task["taskUid"])["status"] == "succeeded"

    def held(gw):
        return {n["id"]: n["replicas"] for n in gw.get("/_miroir/topology")[1]["nodes"]}
    limit = max(1, min(held(main).values()) - 1)
    with extra_gateway(cluster, 27796, "crowded", node_open_indexes=limit) as gw:
        seen = {}

        def agree():
            # the earlier tests' indexes may still be going: one topology before and after
            before = held(gw)
            detail = gw.get("/health", detail="true")[1]
            seen["crowded"] = {c["node"]: c["shardIndexes"] for c in detail["crowdedNodes"]}
            seen["held"] = held(gw)
            return before == seen["held"] and seen["crowded"] == {n: c for n, c in before.items() if c > limit}
        wait_until("crowdedNodes to agree with the topology", agree, 30, 0.5)
        assert seen["crowded"], seen
        assert "crowdedNodes" not in gw.get("/health")[1]  # what load balancers and SDKs read stays as it was
    main.wait_task(main.req("DELETE", "/indexes/crowding")[1]["taskUid"])
