"""Records from producers that are not ours: the documented format on the shard partition, the
inbox topic with any partitioning, and poison records that must land in the dead-letter topic."""
import json
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import settled, shard_of, storage_of, topic_config, wait_until

INDEX = "direct"
SHARDS = 3


def producer(cluster):
    return Producer({"bootstrap.servers": cluster["kafka"], "enable.idempotence": True, "acks": "all"})


def ensure_index(cluster):
    gw = cluster["gateway"]
    if gw.get(f"/indexes/{INDEX}")[0] == 404:
        status, task = gw.post("/indexes", {"uid": INDEX, "primaryKey": "sku", "shards": SHARDS,
                                            "replicationFactor": 2})
        assert gw.wait_task(task["taskUid"])["status"] == "succeeded"


def get_doc(cluster, doc_id):
    status, doc = cluster["gateway"].get(f"/indexes/{INDEX}/documents/{doc_id}")
    return doc if status == 200 else None


def dead_letters(cluster, expect, timeout=60):
    c = Consumer({"bootstrap.servers": cluster["kafka"], "group.id": f"test-{uuid.uuid4()}",
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(f"miroir.dlq.{INDEX}", 0, 0)])
    found = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(found) < expect:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            found.append({"key": m.key(), "value": m.value(), "headers": dict(m.headers() or [])})
    finally:
        c.close()
    return found


def test_documented_record_format_on_the_shard_partition(cluster):
    ensure_index(cluster)
    p = producer(cluster)
    for i in range(30):
        sku = f"k{i}"
        p.produce(f"miroir.idx.{storage_of(cluster['gateway'], INDEX)}", key=sku, value=json.dumps({"sku": sku, "name": f"widget {i}"}),
                  partition=shard_of(sku, SHARDS))
    # a partial update by header, and a document that gets its id from the key
    p.produce(f"miroir.idx.{storage_of(cluster['gateway'], INDEX)}", key="k1", value=json.dumps({"sku": "k1", "colour": "red"}),
              partition=shard_of("k1", SHARDS), headers=[("miroir.op", b"update")])
    p.produce(f"miroir.idx.{storage_of(cluster['gateway'], INDEX)}", key="k2", value=None, partition=shard_of("k2", SHARDS),
              headers=[("miroir.op", b"delete")])
    p.produce(f"miroir.idx.{storage_of(cluster['gateway'], INDEX)}", key="keyonly", value=json.dumps({"name": "id from key"}),
              partition=shard_of("keyonly", SHARDS))
    assert p.flush(30) == 0
    wait_until("direct documents", lambda: get_doc(cluster, "k29") and get_doc(cluster, "keyonly"), 60)
    # No task covers a direct producer's records, so no read waits for them: one replica may have
    # them while the next read goes to another. Wait for every replica before reading.
    wait_until("every replica to apply them", lambda: settled(cluster["gateway"], INDEX), 60)
    wait_until("partial update", lambda: (get_doc(cluster, "k1") or {}).get("colour") == "red", 60)
    assert get_doc(cluster, "k1") == {"sku": "k1", "name": "widget 1", "colour": "red"}
    assert get_doc(cluster, "keyonly") == {"sku": "keyonly", "name": "id from key"}
    wait_until("delete", lambda: get_doc(cluster, "k2") is None, 60)
    # No task covers a direct producer's records: replicas converge on their own, so wait for it.
    wait_until("all replicas", lambda: len(cluster["gateway"].post(f"/indexes/{INDEX}/search",
                                                                   {"q": "widget", "limit": 100})[1]["hits"]) == 29)


def test_inbox_takes_any_partitioning(cluster):
    ensure_index(cluster)
    p = producer(cluster)
    for i in range(20):  # the client's own partitioner picks the partition
        p.produce(f"miroir.in.{INDEX}", key=f"inbox-{i}", value=json.dumps({"sku": f"inbox-{i}", "name": "routed"}))
    p.produce(f"miroir.in.{INDEX}", value=json.dumps({"sku": "nokey-1", "name": "routed by field"}), partition=1)
    assert p.flush(30) == 0
    wait_until("inbox documents", lambda: all(get_doc(cluster, f"inbox-{i}") for i in range(20)), 60)
    wait_until("keyless inbox document", lambda: get_doc(cluster, "nokey-1"), 60)
    # each landed on its shard's replicas only
    for i in range(20):
        sku = f"inbox-{i}"
        for name, node in cluster["nodes"].items():
            for shard in range(SHARDS):
                status, _ = node.get(f"/indexes/{storage_of(cluster['gateway'], INDEX)}__s{shard}/documents/{sku}")
                if status == 200:
                    assert shard == shard_of(sku, SHARDS)


def test_poison_records_go_to_the_dead_letter_topic(cluster):
    ensure_index(cluster)
    gw = cluster["gateway"]
    p = producer(cluster)
    bad_json_key = "poison-json"
    p.produce(f"miroir.idx.{storage_of(cluster['gateway'], INDEX)}", key=bad_json_key, value=b"{not json", partition=shard_of(bad_json_key, SHARDS))
    misrouted = "poison-misrouted"
    p.produce(f"miroir.idx.{storage_of(cluster['gateway'], INDEX)}", key=misrouted, value=json.dumps({"sku": misrouted}),
              partition=(shard_of(misrouted, SHARDS) + 1) % SHARDS)
    p.produce(f"miroir.idx.{storage_of(cluster['gateway'], INDEX)}", key="poison-op", value=b"{}", partition=shard_of("poison-op", SHARDS),
              headers=[("miroir.op", b"explode")])
    # after the poison, the shards keep flowing
    for after in ("after-1", "after-2", "after-3"):
        p.produce(f"miroir.idx.{storage_of(cluster['gateway'], INDEX)}", key=after, value=json.dumps({"sku": after}), partition=shard_of(after, SHARDS))
    assert p.flush(30) == 0
    # a document Meilisearch itself rejects, inside a batch of good ones
    batch = [{"sku": f"good-{i}", "name": "fine"} for i in range(6)]
    batch.insert(3, {"sku": "rejected-by-node", "_vectors": "not a map"})
    status, task = gw.post(f"/indexes/{INDEX}/documents", batch)
    assert status == 202
    done = gw.wait_task(task["taskUid"], timeout=120)
    assert done["status"] == "failed", done
    assert done["error"]["code"] and done["error"]["message"]
    assert done["details"] == {"receivedDocuments": 7, "indexedDocuments": 6}
    for i in range(6):
        assert get_doc(cluster, f"good-{i}") is not None
    assert get_doc(cluster, "rejected-by-node") is None
    wait_until("records after the poison", lambda: all(get_doc(cluster, a) for a in ("after-1", "after-2", "after-3")))
    assert get_doc(cluster, misrouted) is None  # never applied to the wrong shard, nor anywhere

    letters = dead_letters(cluster, expect=4)
    keys = {l["key"] for l in letters}
    assert {bad_json_key.encode(), misrouted.encode(), b"poison-op", b"rejected-by-node"} <= keys
    for l in letters:
        assert f"miroir.idx.{storage_of(cluster['gateway'], INDEX)}".encode() in l["headers"]["miroir.source"]
        error = json.loads(l["headers"]["miroir.error"])
        assert {"message", "code", "type", "link"} <= set(error)
    # one dead letter per record, not one per replica
    assert len([l for l in letters if l["key"] == b"rejected-by-node"]) == 1


def test_index_topics_keep_their_history_in_segments_a_cut_can_free(cluster):
    """An index topic keeps every record until a checkpoint lets its history go, and Kafka frees
    that history a whole segment at a time: the topic is made with history_segment_bytes (64 MiB),
    not the broker's 1 GiB, which would keep most of a small index's history for good."""
    ensure_index(cluster)
    config = topic_config(cluster, f"miroir.idx.{storage_of(cluster['gateway'], INDEX)}")
    assert config["segment.bytes"] == str(64 << 20), config
    assert config["retention.ms"] == "-1" and config["cleanup.policy"] == "delete", config
