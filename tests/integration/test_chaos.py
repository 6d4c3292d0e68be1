"""Chaos: under steady writes and searches on S=4, RF=2, kill -9 in turn a Meilisearch node, an
ingest worker, the gateway, the broker and the rebalancer in the middle of a move; freeze an
ingest worker past its session timeout; cut a node off with a network namespace; add and remove
a node. Meanwhile a second index is deleted and created again under its own writer, a probe reads
its own writes as soon as their tasks succeed, a monitor follows task statuses and another the
applied offsets in the progress topic. Then every acknowledged document is present, with its
latest version, on exactly RF ready replicas; nothing deleted came back; no search failed while
its shard had a live ready replica; no read after a task succeeded was stale; no task status and
no applied offset went back; and the re-created index holds exactly what was written after its
last deletion.

The schedule is shuffled by a seed (MIROIR_CHAOS_SEED replays one). Counts are printed."""
import json
import os
import random
import signal
import subprocess
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from conftest import (ROOT, miroirctl, node_urls, pid_of, placement_of, replica_documents, settled, shard_of,
                      storage_of, wait_until)

INDEX = "chaos"
REBORN = "chaos-reborn"  # deleted and created again under its writer
RANK = {"enqueued": 0, "processing": 1, "succeeded": 2, "failed": 2, "canceled": 2}
SHARDS = 4
RF = 2
WORDS = ["mirror", "silver", "harbor", "lantern", "orchid", "quartz", "meadow", "falcon", "ember", "willow"]


class Load:
    """One writer and one searcher. The writer keeps a model of what Kafka acknowledged: a 202
    means the write is durable and must show; any other outcome makes its ids uncertain (the
    write may or may not have landed), and they are left alone afterwards."""

    def __init__(self, gw, rng):
        self.gw, self.rng = gw, rng
        self.model = {}          # id -> document, for acknowledged writes
        self.deleted = set()     # ids whose acknowledged last write was a delete
        self.uncertain = set()
        self.next_id = 0
        self.phase = "warm-up"
        self.stats = {}
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acknowledged = lambda uid: None

    def count(self, key, n=1):
        with self.lock:
            per = self.stats.setdefault(self.phase, {})
            per[key] = per.get(key, 0) + n

    def write_once(self):
        roll = self.rng.random()
        certain = [k for k in self.model if k not in self.uncertain]
        if roll < 0.6 or len(certain) < 50:
            docs = []
            for _ in range(40):
                i = f"c{self.next_id}"
                self.next_id += 1
                docs.append({"id": i, "title": " ".join(self.rng.sample(WORDS, 3)), "v": 1})
            method, path, body, ids = "POST", f"/indexes/{INDEX}/documents", docs, [d["id"] for d in docs]
        elif roll < 0.85:
            ids = self.rng.sample(certain, 20)
            body = [{"id": i, "v": self.model[i]["v"] + 1, "touched": self.rng.randint(0, 9)} for i in ids]
            method, path = "PUT", f"/indexes/{INDEX}/documents"
        else:
            ids = self.rng.sample(certain, 10)
            method, path, body = "POST", f"/indexes/{INDEX}/documents/delete-batch", ids
        status, task = request(self.gw, method, path, body)
        if status != 202:
            self.uncertain.update(ids)
            self.count("writes refused")
            return
        self.count("writes acknowledged")
        self.acknowledged(task["taskUid"])
        if path.endswith("delete-batch"):
            for i in ids:
                self.model.pop(i)
                self.deleted.add(i)
        elif method == "PUT":
            for d in body:
                self.model[d["id"]].update(d)
        else:
            for d in body:
                self.model[d["id"]] = dict(d)
            self.count("documents acknowledged", len(body))

    def write(self):
        while not self.stop.is_set():
            self.write_once()
            time.sleep(0.05)

    def search(self):
        while not self.stop.is_set():
            try:
                status, found = self.gw.post(f"/indexes/{INDEX}/search", {"q": random.choice(WORDS), "limit": 5})
            except Exception:  # noqa: BLE001 - counted below
                status = 0
            self.count("searches ok" if status == 200 else "searches failed")
            time.sleep(0.03)


def request(gw, method, path, body=None):
    """One request; (0, None) when the gateway can't be reached."""
    try:
        return gw.req(method, path, body)
    except Exception:  # noqa: BLE001 - unreachable: the caller counts it
        return 0, None


class Probe:
    """Writes a new version of one document, waits for its task to succeed, then reads it back
    at once by id and by search: a read that shows an older version is stale."""

    def __init__(self, gw):
        self.gw = gw
        self.v = 0
        self.reads = self.stale = self.unanswered = 0
        self.examples = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.v += 1
            status, task = request(self.gw, "PUT", f"/indexes/{INDEX}/documents",
                                   [{"id": "probe", "title": "beacon probe", "v": self.v}])
            if status != 202 or not self.settle(task["taskUid"]):
                continue
            for got in (self.read_by_id(), self.read_by_search()):
                if got is None:
                    self.unanswered += 1
                    continue
                self.reads += 1
                if got < self.v:
                    self.stale += 1
                    self.examples.append((self.v, got))
            time.sleep(0.5)

    def settle(self, uid):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not self.stop.is_set():
            status, t = request(self.gw, "GET", f"/tasks/{uid}")
            if status == 200 and t["status"] == "succeeded":
                return True
            time.sleep(0.05)
        return False

    def read_by_id(self):
        status, doc = request(self.gw, "GET", f"/indexes/{INDEX}/documents/probe")
        return doc.get("v") if status == 200 else None

    def read_by_search(self):
        status, found = request(self.gw, "POST", f"/indexes/{INDEX}/search", {"q": "beacon", "limit": 3})
        if status != 200:
            return None
        return next((h["v"] for h in found["hits"] if h["id"] == "probe"), -1)


class StatusMonitor:
    """Follows the status of every task the writers were acknowledged: none may go back."""

    def __init__(self, gw):
        self.gw = gw
        self.seen = {}
        self.regressions = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def add(self, uid):
        with self.lock:
            self.seen.setdefault(uid, "enqueued")

    def run(self):
        while not self.stop.is_set():
            with self.lock:
                watched = list(self.seen.items())[-30:]
            for uid, before in watched:
                status, t = request(self.gw, "GET", f"/tasks/{uid}")
                if status != 200:
                    continue
                now = t["status"]
                if RANK[now] < RANK[before] or (RANK[before] == 2 and now != before):
                    self.regressions.append((uid, before, now))
                with self.lock:
                    self.seen[uid] = now if RANK[now] >= RANK[before] else before
            time.sleep(1)


class OffsetMonitor:
    """Reads every committed applied offset from the progress topic: for one replica's life,
    none may be lower than one before it (a zombie worker moving an offset back)."""

    def __init__(self, kafka):
        self.consumer = Consumer({"bootstrap.servers": kafka, "group.id": "chaos-offsets", "enable.auto.commit": False,
                                  "isolation.level": "read_committed"})
        parts = self.consumer.list_topics("miroir.progress", timeout=10).topics["miroir.progress"].partitions
        self.consumer.assign([TopicPartition("miroir.progress", p, OFFSET_BEGINNING) for p in parts])
        self.best = {}
        self.records = 0
        self.regressions = []
        self.stop = threading.Event()

    def run(self):
        try:
            while not self.stop.is_set():
                m = self.consumer.poll(0.2)
                if m is None or m.error() or not m.value():
                    continue
                key = m.key().decode()
                if not key.startswith(("applied/", "commit/")):
                    continue
                v = json.loads(m.value())
                life = (key, v.get("incarnation", 0))
                self.records += 1
                if v["offset"] < self.best.get(life, -1):
                    self.regressions.append((key, self.best[life], v["offset"]))
                self.best[life] = max(v["offset"], self.best.get(life, -1))
        finally:
            self.consumer.close()


class Reborn:
    """An index deleted and created again every few seconds while a writer adds documents to it.
    As on one node, its final documents are those of the writes acknowledged after its last
    acknowledged deletion (in task order); none of the writes before it."""

    def __init__(self, gw, rng, statuses):
        self.gw, self.rng, self.statuses = gw, rng, statuses
        self.writes = []    # (task uid, ids) of acknowledged writes
        self.deletes = []   # task uids of acknowledged deletions
        self.uncertain = set()
        self.next_id = 0
        self.stop = threading.Event()
        self.calm = threading.Event()  # set while no fault is under way
        self.calm.set()

    def write(self):
        while not self.stop.is_set():
            ids = [f"r{self.next_id + i}" for i in range(5)]
            self.next_id += 5
            status, task = request(self.gw, "POST", f"/indexes/{REBORN}/documents", [{"id": i, "n": 1} for i in ids])
            if status == 202:
                self.writes.append((task["taskUid"], ids))
                self.statuses.add(task["taskUid"])
            else:
                self.uncertain.update(ids)
            time.sleep(0.5)

    def recreate(self):
        while not self.stop.is_set():
            time.sleep(self.rng.uniform(2, 4))
            self.calm.wait()
            if self.stop.is_set():
                break
            status, task = request(self.gw, "DELETE", f"/indexes/{REBORN}")
            if status == 202:
                self.deletes.append(task["taskUid"])
            if self.rng.random() < 0.7:  # else the next write creates it, with 4 shards
                request(self.gw, "POST", "/indexes", {"uid": REBORN, "primaryKey": "id", "shards": 1})


def kill(cluster, name):
    os.kill(pid_of(cluster, name), signal.SIGKILL)
    time.sleep(0.5)


def restart(cluster):
    subprocess.run([os.path.join(ROOT, "miroir.sh"), "start"], env=cluster["env"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)


def test_chaos(moving_cluster, extra_nodes):
    seed = int(os.environ.get("MIROIR_CHAOS_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"\nchaos seed {seed} (MIROIR_CHAOS_SEED={seed} replays this schedule)")
    gw = moving_cluster["gateway"]
    status, task = gw.post("/indexes", {"uid": INDEX, "primaryKey": "id", "shards": SHARDS, "replicationFactor": RF})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    n5 = extra_nodes("n5", 7700, netns={"name": "mrchaos", "subnet": "10.77.0"})
    n5.start()

    def kill_node():
        victim = rng.choice(["node1", "node2", "node3"])
        kill(moving_cluster, victim)
        time.sleep(6)
        restart(moving_cluster)

    def kill_ingest():
        kill(moving_cluster, rng.choice(["ingest1", "ingest2"]))
        time.sleep(8)  # its partitions move to the other worker meanwhile
        restart(moving_cluster)

    def kill_gateway():
        kill(moving_cluster, "gateway")
        time.sleep(1)
        restart(moving_cluster)

    def freeze_ingest():
        # past its session timeout (10 s): its leases move to the other worker, and when it runs
        # again it must neither apply what it had read nor write any progress
        pid = pid_of(moving_cluster, rng.choice(["ingest1", "ingest2"]))
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(15)
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(3)

    def kill_broker():
        kill(moving_cluster, "kafka")
        time.sleep(5)
        restart(moving_cluster)

    def add_node_and_kill_the_rebalancer_mid_move():
        status, answer = gw.post("/_miroir/nodes", {"id": "n5", "url": n5.url})
        assert status == 202, answer

        def building():
            return [(s["shard"], r) for s in placement_of(gw, INDEX) for r in s["replicas"]
                    if r["node"] == "n5" and r["state"] in ("new", "building")]

        wait_until("a replica to start building on n5", building, 60, 0.01)
        kill(moving_cluster, "rebalancer")
        time.sleep(3)
        # with no rebalancer, nothing promotes: a half-built replica is never marked ready
        for shard, rep in building():
            assert rep["state"] != "ready"
        restart(moving_cluster)
        assert miroirctl(moving_cluster, "wait", "--timeout", "180").returncode == 0

    def cut_node_off():
        n5.cut(True)
        time.sleep(8)
        n5.cut(False)
        time.sleep(2)

    def remove_node():
        assert miroirctl(moving_cluster, "remove-node", "--wait", "--timeout", "180", "n5").returncode == 0

    faults = [kill_node, kill_ingest, kill_gateway, kill_broker, freeze_ingest]
    rng.shuffle(faults)
    # the node-lifecycle faults keep their order, spread among the others
    at = sorted(rng.sample(range(len(faults) + 3), 3))
    for pos, fault in zip(at, [add_node_and_kill_the_rebalancer_mid_move, cut_node_off, remove_node]):
        faults.insert(pos, fault)

    load = Load(gw, rng)
    statuses = StatusMonitor(gw)
    load.acknowledged = statuses.add
    probe, offsets = Probe(gw), OffsetMonitor(moving_cluster["kafka"])
    reborn = Reborn(gw, random.Random(seed + 1), statuses)
    workers = [load.write, load.search, probe.run, statuses.run, offsets.run, reborn.write, reborn.recreate]
    threads = [threading.Thread(target=w, daemon=True) for w in workers]
    for t in threads:
        t.start()
    def healed():
        # every shard of the index has RF replicas that are live, ready and in sync
        status, health = request(gw, "GET", "/health?detail=true")
        mine = [s for s in (health or {}).get("shards", []) if s["index"] == INDEX]
        return status == 200 and len(mine) == SHARDS and all(s["status"] == "green" for s in mine)

    try:
        time.sleep(4)
        for fault in faults:
            # RF copies survive one fault at a time: each comes once the last one has healed,
            # and healing within a bound is itself what is checked here
            load.phase = f"healing before {fault.__name__}"
            wait_until(f"the cluster to heal before {fault.__name__}", healed, 120, 0.2)
            load.phase = fault.__name__
            reborn.calm.clear()  # its deletions are acknowledged or not made: no uncertain epochs
            fault()
            reborn.calm.set()
            load.phase = f"after {fault.__name__}"
            time.sleep(3)
    finally:
        for stopping in (load, probe, reborn):
            stopping.stop.set()
        reborn.calm.set()
        for t in threads[:3] + threads[5:]:
            t.join(60)
        restart(moving_cluster)

    wait_until("every replica to catch up", lambda: settled(gw, INDEX), 300, 1)
    nodes = node_urls(gw)
    assert set(nodes) == {"n1", "n2", "n3"}
    lost = stale = resurrected = misplaced = 0
    copies = {}
    for s in placement_of(gw, INDEX):
        assert len(s["replicas"]) == RF and all(r["state"] == "ready" for r in s["replicas"]), s
        for r in s["replicas"]:
            docs = replica_documents(nodes[r["node"]], f"{storage_of(gw, INDEX)}__s{s['shard']}")
            for i, d in docs.items():
                copies[i] = copies.get(i, 0) + 1
                misplaced += shard_of(i, SHARDS) != s["shard"]
                if i in load.uncertain:
                    continue
                if i in load.deleted:
                    resurrected += 1
                elif i in load.model and d != load.model[i]:
                    stale += 1
            for i in load.model:
                if shard_of(i, SHARDS) == s["shard"] and i not in load.uncertain and i not in docs:
                    lost += 1
    duplicated = sum(1 for i, n in copies.items() if n > RF)
    acknowledged = sum(p.get("documents acknowledged", 0) for p in load.stats.values())

    print(f"{'phase':48} {'writes ok':>9} {'refused':>8} {'searches':>9} {'failed':>7}")
    for phase, p in load.stats.items():
        print(f"{phase:48} {p.get('writes acknowledged', 0):9} {p.get('writes refused', 0):8} "
              f"{p.get('searches ok', 0):9} {p.get('searches failed', 0):7}")
    print(f"documents acknowledged {acknowledged}, in the final model {len(load.model)}, deleted {len(load.deleted)}, "
          f"uncertain {len(load.uncertain)}")
    print(f"lost {lost}, stale {stale}, resurrected {resurrected}, duplicated {duplicated}, misplaced {misplaced} "
          f"(counted per replica)")
    # the re-created index: what was written after its last deletion, nothing before
    last_delete = max(reborn.deletes, default=-1)
    for uid, _ in reborn.writes[-50:]:
        done = gw.wait_task(uid, timeout=120)
        assert done["status"] == "succeeded", done
    status, page = gw.get(f"/indexes/{REBORN}/documents", limit=100000, fields="id")
    there = {d["id"] for d in page["results"]} if status == 200 else set()
    expected = {i for uid, ids in reborn.writes if uid > last_delete for i in ids} - reborn.uncertain
    earlier = {i for uid, ids in reborn.writes if uid < last_delete for i in ids} - reborn.uncertain
    reborn_lost, reborn_back = len(expected - there), len(earlier & there)
    time.sleep(1)  # the monitors see the end
    for stopping in (statuses, offsets):
        stopping.stop.set()
    for t in threads[3:5]:
        t.join(30)
    print(f"re-created {len(reborn.deletes)} times under {len(reborn.writes)} acknowledged writes: "
          f"lost {reborn_lost}, from before the last deletion {reborn_back}")
    print(f"reads after succeeded {probe.reads}, stale {probe.stale} {probe.examples[:5]}, unanswered {probe.unanswered}")
    print(f"task statuses followed {len(statuses.seen)}, went back {len(statuses.regressions)} {statuses.regressions[:5]}")
    print(f"applied offsets read {offsets.records}, went back {len(offsets.regressions)} {offsets.regressions[:5]}")
    assert (lost, stale, resurrected, duplicated, misplaced) == (0, 0, 0, 0, 0)
    assert (reborn_lost, reborn_back) == (0, 0)
    assert probe.stale == 0 and probe.reads > 20
    assert not statuses.regressions
    assert not offsets.regressions and offsets.records > 100
    for phase, p in load.stats.items():
        if "kill_gateway" not in phase:  # while the gateway is down, nothing answers: expected
            assert p.get("searches failed", 0) == 0, (phase, p)
    assert acknowledged > 1000
