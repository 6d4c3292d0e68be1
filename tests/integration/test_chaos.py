"""Chaos: under steady writes and searches on S=4, RF=2, kill -9 in turn a Meilisearch node, an
ingest worker, the gateway, the broker and the rebalancer in the middle of a move; cut a node off
with a network namespace; add and remove a node. Then every acknowledged document is present,
with its latest version, on exactly RF ready replicas; nothing deleted came back; and no search
failed while its shard had a live ready replica.

The schedule is shuffled by a seed (MIROIR_CHAOS_SEED replays one). Counts are printed."""
import json
import os
import random
import signal
import subprocess
import threading
import time

from conftest import ROOT, miroirctl, pid_of, placement_of, replica_documents, settled, shard_of, wait_until

INDEX = "chaos"
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
        try:
            status, _ = self.gw.req(method, path, body)
        except Exception:  # noqa: BLE001 - unreachable gateway: not acknowledged
            status = 0
        if status != 202:
            self.uncertain.update(ids)
            self.count("writes refused")
            return
        self.count("writes acknowledged")
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

    faults = [kill_node, kill_ingest, kill_gateway, kill_broker]
    rng.shuffle(faults)
    # the node-lifecycle faults keep their order, spread among the others
    at = sorted(rng.sample(range(len(faults) + 3), 3))
    for pos, fault in zip(at, [add_node_and_kill_the_rebalancer_mid_move, cut_node_off, remove_node]):
        faults.insert(pos, fault)

    load = Load(gw, rng)
    threads = [threading.Thread(target=load.write, daemon=True), threading.Thread(target=load.search, daemon=True)]
    for t in threads:
        t.start()
    try:
        time.sleep(4)
        for fault in faults:
            load.phase = fault.__name__
            fault()
            load.phase = f"after {fault.__name__}"
            time.sleep(3)
    finally:
        load.stop.set()
        for t in threads:
            t.join(30)
        restart(moving_cluster)

    wait_until("every replica to catch up", lambda: settled(gw, INDEX), 300, 1)
    nodes = {n["id"]: n["url"] for n in gw.get("/_miroir/nodes")[1]["results"]}
    assert set(nodes) == {"n1", "n2", "n3"}
    lost = stale = resurrected = misplaced = 0
    copies = {}
    for s in placement_of(gw, INDEX):
        assert len(s["replicas"]) == RF and all(r["state"] == "ready" for r in s["replicas"]), s
        for r in s["replicas"]:
            docs = replica_documents(nodes[r["node"]], f"{INDEX}__s{s['shard']}")
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
    assert (lost, stale, resurrected, duplicated, misplaced) == (0, 0, 0, 0, 0)
    for phase, p in load.stats.items():
        if "kill_gateway" not in phase:  # while the gateway is down, nothing answers: expected
            assert p.get("searches failed", 0) == 0, (phase, p)
    assert acknowledged > 1000
