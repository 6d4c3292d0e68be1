"""Bounded history on a cluster of its own: a replica is rebuilt from an exact copy of a ready peer
pinned to an offset, then the rest of the log, though the shard's history holds partial updates,
deletes by id and by filter and a settings change between the copy and the end of the tail;
checkpoints let the index topic drop its old history, never what a replica or a restore needs;
and a shard whose every replica lost its data comes back from its checkpoint and the log."""
import os
import shutil
import signal
import subprocess
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from conftest import (NODE_KEY, ROOT, Http, miroirctl, node_urls, pid_of, placement_of, replica_documents,
                      running_cluster, settled, shard_of, storage_of, topic_config, wait_until)

KAFKA, GATEWAY, NODES = 24092, 24700, 24701
INDEX = "history"
SHARDS, RF = 2, 2


@pytest.fixture(scope="module")
def hcluster():
    extra = ("rebalance_interval_ms = 200\nretire_grace_ms = 500\nconnect_timeout_ms = 500\n"
             "checkpoint_min_records = 3000\ncheckpoint_history_percent = 100")
    with running_cluster("miroir-history-", KAFKA, GATEWAY, NODES, extra=extra) as c:
        yield c


class Model:
    """The documents acknowledged writes leave, by id."""

    def __init__(self, gw):
        self.gw, self.docs = gw, {}

    def write(self, docs, wait=True):
        status, task = self.gw.post(f"/indexes/{INDEX}/documents", docs)
        assert status == 202, task
        for d in docs:
            self.docs[str(d["id"])] = dict(d)
        return self.done(task, wait)

    def update(self, patches, wait=True):
        status, task = self.gw.req("PUT", f"/indexes/{INDEX}/documents", patches)
        assert status == 202, task
        for p in patches:
            self.docs.setdefault(str(p["id"]), {}).update(p)
        return self.done(task, wait)

    def delete(self, ids, wait=True):
        status, task = self.gw.post(f"/indexes/{INDEX}/documents/delete-batch", ids)
        assert status == 202, task
        for i in ids:
            self.docs.pop(str(i), None)
        return self.done(task, wait)

    def delete_where(self, field, value, wait=True):
        status, task = self.gw.post(f"/indexes/{INDEX}/documents/delete", {"filter": f"{field} = {value}"})
        assert status == 202, task
        self.docs = {k: d for k, d in self.docs.items() if d.get(field) != value}
        return self.done(task, wait)

    def done(self, task, wait):
        if wait:
            assert self.gw.wait_task(task["taskUid"], timeout=180)["status"] == "succeeded"
        return task["taskUid"]

    def of_shard(self, shard):
        return {k: d for k, d in self.docs.items() if shard_of(k, SHARDS) == shard}


@pytest.fixture(scope="module")
def model(hcluster):
    gw = hcluster["gateway"]
    status, task = gw.post("/indexes", {"uid": INDEX, "primaryKey": "id", "shards": SHARDS, "replicationFactor": RF})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, task = gw.req("PATCH", f"/indexes/{INDEX}/settings", {"filterableAttributes": ["grp", "round"]})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    m = Model(gw)
    for start in range(0, 6000, 1000):
        m.write([{"id": i, "title": f"doc {i}", "grp": i % 7, "round": 0, "v": 0} for i in range(start, start + 1000)])
    return m


def metric(gw, name):
    """{labels: value} of one metric of /metrics."""
    out = {}
    for line in gw.s.get(gw.base + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name):].rsplit(" ", 1)
            out[labels] = float(value)
    return out


def same_settings(urls, storage, shard, holders):
    got = [Http(urls[n], NODE_KEY).get(f"/indexes/{storage}__s{shard}/settings")[1] for n in holders]
    return all(g == got[0] for g in got), got


def test_a_rebuild_copies_a_peer_pinned_to_an_offset(hcluster, model):
    """A node drained while writes go on (partial updates, deletes by id and by filter), and while
    the settings change after the copy began: each replica that moves is filled by a copy of its
    ready peer, not by a replay, and ends equal to it, documents and settings."""
    gw = hcluster["gateway"]
    for r in range(1, 3):  # history: partial updates, deletes by id and by filter
        model.update([{"id": i, "round": r, "v": r} for i in range(0, 6000, 3)])
    model.delete(list(range(5, 6000, 50)))
    model.delete_where("grp", 6)
    storage = storage_of(gw, INDEX)
    urls = node_urls(gw)
    shard = 0
    holders = [r["node"] for r in placement_of(gw, INDEX)[shard]["replicas"]]
    leaving = holders[0]
    log = os.path.join(hcluster["state"], "logs", "ingest1.log")
    before = open(log).read().count("filled ")
    assert miroirctl(hcluster, "drain", leaving).returncode == 0
    wait_until("the copy to begin", lambda: f"{storage}__s{shard} on " in open(log).read()[-20000:] and
               "from a copy of" in open(log).read()[-20000:], 60, 0.1)
    # during the copy and its tail: more history, and a settings change
    status, settings_task = gw.req("PATCH", f"/indexes/{INDEX}/settings", {"sortableAttributes": ["v"],
                                                                           "filterableAttributes": ["grp", "round", "v"]})
    assert status == 202
    model.update([{"id": i, "v": 9, "late": True} for i in range(1, 6000, 4) if str(i) in model.docs], wait=False)
    model.delete(list(range(2, 6000, 40)), wait=False)
    last = model.write([{"id": 10_000 + i, "title": "late", "grp": 1, "round": 9, "v": 9} for i in range(200)], wait=False)
    assert gw.wait_task(settings_task["taskUid"])["status"] == "succeeded"
    assert gw.wait_task(last, timeout=180)["status"] == "succeeded"
    wait_until("the moves off the drained node", lambda: settled(gw, INDEX) and all(
        r["node"] != leaving for s in placement_of(gw, INDEX) for r in s["replicas"]), 180, 0.5)
    assert open(log).read().count("filled ") > before, "the moved replicas were replayed, not copied"
    copies = metric(gw, "miroir_peer_copy_documents")
    pauses = metric(gw, "miroir_peer_copy_pause_seconds")
    print(f"\ncopies {copies}, the peers' writes waited {pauses} s")
    assert copies and all(v > 0 for v in copies.values()), copies
    for s in placement_of(gw, INDEX):
        nodes = [r["node"] for r in s["replicas"]]
        for n in nodes:
            assert replica_documents(urls[n], f"{storage}__s{s['shard']}") == model.of_shard(s["shard"]), (s, n)
        same, got = same_settings(urls, storage, s["shard"], nodes)
        assert same and got[0]["sortableAttributes"] == ["v"], got
    status, verdict = gw.post("/_miroir/verify", {"indexes": [INDEX]})
    assert verdict["summary"]["consistent"] == SHARDS, verdict
    assert miroirctl(hcluster, "add-node", leaving, urls[leaving]).returncode == 0  # back in service
    wait_until("the node back", lambda: settled(gw, INDEX), 180, 0.5)


def log_start(kafka, topic, partition):
    c = Consumer({"bootstrap.servers": kafka, "group.id": f"probe-{time.time()}"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


def test_truncation_keeps_what_every_replica_and_a_restore_need(hcluster, model):
    """Once the history since the last checkpoint outgrows the shard's documents, a checkpoint is
    taken and the records below it go, but never below a replica's own position: a node frozen
    behind keeps its records, and catches up when it runs again."""
    gw = hcluster["gateway"]
    storage = storage_of(gw, INDEX)
    topic = f"miroir.idx.{storage}"
    laggard = placement_of(gw, INDEX)[1]["replicas"][1]["node"]
    pid = pid_of(hcluster, f"node{laggard[1:]}")
    os.kill(pid, signal.SIGSTOP)
    try:
        for r in range(10, 13):
            model.update([{"id": i, "round": r} for i in range(0, 12_000) if str(i) in model.docs][:6000])
        # Checkpoints are looked at every 10 s per shard, and the first test's may have cut nothing
        # (one taken while a fill ran keeps everything): wait for a cut in every shard.
        wait_until("a checkpoint to cut every shard's history",
                   lambda: all(log_start(hcluster["kafka"], topic, s)[0] > 0 for s in range(SHARDS)), 120, 0.5)
        kept = metric(gw, "miroir_shard_history_kept_from")
        topo = gw.get("/_miroir/topology")[1]
        ix = next(i for i in topo["indexes"] if i["uid"] == INDEX)
        for s in ix["placement"]:
            first, end = log_start(hcluster["kafka"], topic, s["shard"])
            applied = min(r["appliedOffset"] for r in s["replicas"])
            print(f"\nshard {s['shard']}: log starts at {first} of {end}; replicas applied {[r['appliedOffset'] for r in s['replicas']]}")
            assert first <= applied, (s, first)  # nothing a replica still needs is gone
            if s["shard"] == 1:
                assert first <= next(r["appliedOffset"] for r in s["replicas"] if r["node"] == laggard)
        assert any(v > 0 for v in kept.values()), kept  # some history did go
        for name in (topic, f"miroir.ckpt.{storage}"):  # freed in 64 MiB segments, not Kafka's 1 GiB
            assert topic_config(hcluster, name)["segment.bytes"] == str(64 << 20), name
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until("the frozen node to catch up", lambda: settled(gw, INDEX), 120, 0.5)
    urls = node_urls(gw)
    assert replica_documents(urls[laggard], f"{storage}__s1") == model.of_shard(1)


def test_a_shard_whose_every_replica_is_lost_comes_back(hcluster, model):
    """Both nodes holding shard 0 are killed and their data deleted. The rebalancer sees they lost
    it; shard 0 comes back from its checkpoint and the log (its history below the checkpoint is
    gone, so no replay from the start could do it), the others from their surviving copies, and
    every acknowledged document is there."""
    gw = hcluster["gateway"]
    storage = storage_of(gw, INDEX)
    topic = f"miroir.idx.{storage}"
    assert log_start(hcluster["kafka"], topic, 0)[0] > 0
    holders = [r["node"] for r in placement_of(gw, INDEX)[0]["replicas"]]
    model.update([{"id": i, "round": 20} for i in range(0, 300) if str(i) in model.docs])  # after the checkpoint
    for node in holders:
        os.kill(pid_of(hcluster, f"node{node[1:]}"), signal.SIGKILL)
    for node in holders:
        wait_until(f"{node} to stop", lambda n=node: subprocess.run(["kill", "-0", str(pid_of(hcluster, f"node{n[1:]}"))],
                                                                     capture_output=True).returncode != 0, 20)
        shutil.rmtree(os.path.join(hcluster["state"], f"node{node[1:]}"))
    subprocess.run([os.path.join(ROOT, "miroir.sh"), "start"], env=hcluster["env"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    log = os.path.join(hcluster["state"], "logs", "rebalancer.log")
    ingest_log = os.path.join(hcluster["state"], "logs", "ingest1.log")
    wait_until("the rebalancer to see the lost data", lambda: "lost its data" in open(log).read(), 30, 0.2)
    wait_until("shard 0 restored from its checkpoint", lambda: f"restored {storage}__s0" in open(ingest_log).read(),
               120, 0.2)
    wait_until("the shards to come back", lambda: settled(gw, INDEX) and gw.get("/health")[1]["cluster"] == "green",
               240, 0.5)
    urls = node_urls(gw)
    for s in placement_of(gw, INDEX):
        for r in s["replicas"]:
            got = replica_documents(urls[r["node"]], f"{storage}__s{s['shard']}")
            assert got == model.of_shard(s["shard"]), (s["shard"], r["node"], len(got))
    status, page = gw.get(f"/indexes/{INDEX}/documents", limit=20000)
    assert page["total"] == len(model.docs)
    status, verdict = gw.post("/_miroir/verify", {"indexes": [INDEX]})
    assert verdict["summary"]["consistent"] == SHARDS, verdict


def test_backup_and_restore_into_another_cluster(hcluster, model, cluster):
    """miroirctl backup writes the index (layout, settings, every document) to a file; miroirctl
    restore makes it again from the file, here in another cluster, under another name too."""
    gw = hcluster["gateway"]
    path = os.path.join(hcluster["state"], "history.ndjson")
    result = miroirctl(hcluster, "backup", INDEX, path)
    assert result.returncode == 0, result.stderr
    assert f"{len(model.docs)} documents" in result.stdout, result.stdout
    other = cluster  # the suite's main cluster
    for target, name in ((hcluster, "history-restored"), (other, None)):
        uid = name or INDEX
        result = miroirctl(target, "restore", path, *([name] if name else []))
        assert result.returncode == 0, result.stderr
        tgw = target["gateway"]
        status, page = tgw.get(f"/indexes/{uid}/documents", limit=20000)
        assert page["total"] == len(model.docs)
        got = {str(d["id"]): d for d in page["results"]}
        assert got == model.docs
        assert tgw.get(f"/indexes/{uid}/settings")[1] == gw.get(f"/indexes/{INDEX}/settings")[1]
        topo = tgw.get("/_miroir/topology")[1]
        layout = next(i for i in topo["indexes"] if i["uid"] == uid)
        assert (layout["shards"], layout["replicationFactor"]) == (SHARDS, RF)
    other["gateway"].req("DELETE", f"/indexes/{INDEX}")
    status, err = gw.get("/_miroir/indexes/nope/shards/0/documents")
    assert status == 404 and err["code"] == "index_not_found"
    status, err = gw.get(f"/_miroir/indexes/{INDEX}/shards/9/documents")
    assert status == 400 and err["code"] == "miroir_invalid_shard"
    result = miroirctl(hcluster, "restore", os.path.join(hcluster["state"], "logs", "gateway.log"))
    assert result.returncode == 2 and "no backup" in result.stderr


def restart_ingest(hcluster, extra):
    env = dict(hcluster["env"], MIROIR_EXTRA_CONFIG=extra)
    subprocess.run([os.path.join(ROOT, "miroir.sh"), "stop", "ingest1"], env=env, cwd=ROOT, check=True)
    subprocess.run([os.path.join(ROOT, "miroir.sh"), "start"], env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def test_a_quiet_index_is_checkpointed_after_a_worker_restart(hcluster):
    """History written while checkpoints were off is checkpointed once they are on, though nothing
    is written any more: a worker with no writes to apply proves its leases on demand before it
    cuts history (it used to wait for a write that never came)."""
    gw = hcluster["gateway"]
    uid = "quiet"
    status, task = gw.post("/indexes", {"uid": uid, "primaryKey": "id", "shards": 1, "replicationFactor": 1})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    on = hcluster["env"]["MIROIR_EXTRA_CONFIG"]
    restart_ingest(hcluster, on.replace("checkpoint_min_records = 3000", "checkpoint_min_records = 0"))
    try:
        for start in range(0, 4000, 1000):
            status, task = gw.post(f"/indexes/{uid}/documents", [{"id": i} for i in range(start, start + 1000)])
            assert gw.wait_task(task["taskUid"], timeout=120)["status"] == "succeeded"
        time.sleep(2)
        assert not any(f'index="{uid}"' in k for k in metric(gw, "miroir_checkpoint_documents"))
    finally:
        restart_ingest(hcluster, on)
    wait_until("the quiet index's checkpoint", lambda: metric(gw, "miroir_checkpoint_documents").get(
        f'{{index="{uid}",shard="0"}}') == 4000, 90, 0.5)
    topic = f"miroir.idx.{storage_of(gw, uid)}"
    assert log_start(hcluster["kafka"], topic, 0)[0] > 0
    gw.req("DELETE", f"/indexes/{uid}")
