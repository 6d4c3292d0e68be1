"""./miroir.sh bench [--quick]: Miroir against direct Meilisearch, measured in one run.

Starts its own cluster (3 nodes, then a 4th), a baseline node and the load generator, on ports
4xxxx; runs every row; prints a table and writes docs/benchmarks.md and docs/benchmarks.json.
Each row is a ratio against a baseline measured in the same run: absolute figures on a shared
machine are noise. Everything started here is stopped here."""
import argparse
import gzip
import json
import os
import re
import select
import socket
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from conftest import (BUILD, NODE_KEY, ROOT, ExtraNode, Http, healthy, hrw_target, placement_of,  # noqa: E402
                      running_cluster, settled, shard_of, storage_of, wait_until)

CORPUS = os.path.abspath(os.path.join(ROOT, "..", "shared", "data", "packages.jsonl.gz"))
QUERIES = os.path.join(HERE, "queries.jsonl")
LOADGEN = os.path.join(BUILD, "tests", "miroir-loadgen")
MERGEBENCH = os.path.join(BUILD, "tests", "miroir-mergebench")
PLACESIM = os.path.join(BUILD, "tests", "miroir-placesim")
KAFKA, GATEWAY, NODES, N4, BASE = 31092, 31700, 31701, 31704, 31710
# Every bench cluster: checkpoints stay off until the history rows turn them on (rows 3 to 5
# measure ingest and rebuilds as before; row 10 needs the whole history first); the broker deletes
# the segments below a partition's start within seconds.
CLUSTER_EXTRA = ("rebalance_concurrency = 2\nrebalance_interval_ms = 200\nretire_grace_ms = 500\n"
                 "max_body_bytes = 209715200\nproduce_timeout_ms = 60000\ncheckpoint_min_records = 0")
KAFKA_EXTRA = "log.segment.bytes=67108864\nlog.retention.check.interval.ms=5000"
UP_KAFKA, UP_GATEWAY, UP_NODES, UP_PLAIN = 32092, 32700, 32701, 32710
UPLOAD_MASTER = "bench-uploads-master-key-0123456789"
UPLOADS, UPLOAD_BYTES = 10, 90 << 20
SETTINGS = {"filterableAttributes": ["registry", "month"], "sortableAttributes": ["month"]}
CHUNK = 100_000
CONCURRENCY = 8


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def chunks_of(path, limit):
    """The corpus as NDJSON request bodies of CHUNK documents (as the design's direct import)."""
    bodies, lines = [], []
    with gzip.open(path, "rt") as f:
        for n, line in enumerate(f):
            if limit and n >= limit:
                break
            lines.append(line)
            if len(lines) == CHUNK:
                bodies.append("".join(lines).encode())
                lines = []
    if lines:
        bodies.append("".join(lines).encode())
    return bodies, sum(b.count(b"\n") for b in bodies)


def wait_node_task(node, uid, timeout=3600):
    def done():
        t = node.get(f"/tasks/{uid}")[1]
        return t if t["status"] in ("succeeded", "failed") else None
    t = wait_until(f"task {uid}", done, timeout, 0.2)
    assert t["status"] == "succeeded", t


def import_direct(node, bodies):
    node.post("/indexes", {"uid": "packages", "primaryKey": "id"})
    status, t = node.req("PATCH", "/indexes/packages/settings", SETTINGS)
    wait_node_task(node, t["taskUid"])
    started = time.monotonic()
    uids = [node.post("/indexes/packages/documents", raw=b, ctype="application/x-ndjson")[1]["taskUid"] for b in bodies]
    wait_node_task(node, uids[-1])
    return time.monotonic() - started


def create_index(gw, uid, shards, rf):
    status, t = gw.post("/indexes", {"uid": uid, "primaryKey": "id", "shards": shards, "replicationFactor": rf})
    assert status == 202, t
    gw.wait_task(t["taskUid"])
    status, t = gw.req("PATCH", f"/indexes/{uid}/settings", SETTINGS)
    assert gw.wait_task(t["taskUid"])["status"] == "succeeded"


def import_gateway(gw, uid, bodies):
    started = time.monotonic()
    tasks = []
    for b in bodies:
        status, t = gw.post(f"/indexes/{uid}/documents", raw=b, ctype="application/x-ndjson")
        assert status == 202, t
        tasks.append(t["taskUid"])
    for uid_ in tasks:
        assert gw.wait_task(uid_, timeout=7200)["status"] == "succeeded"
    return time.monotonic() - started


def load(urls, duration, key=None):
    cmd = [LOADGEN, "--queries", QUERIES, "--concurrency", str(CONCURRENCY), "--duration", f"{duration:g}"]
    for u in urls:
        cmd += ["--url", u]
    if key:
        cmd += ["--key", key]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    assert result["errors"] == 0, result
    return result


def compare(a, b, duration, rounds=2):
    """Measures two targets in alternation (a, b, a, b, …) so that neither gets the quieter
    moment of a shared machine; returns each side's runs averaged. a and b are (urls, key)."""
    runs = {0: [], 1: []}
    for _ in range(rounds):
        for side, (urls, key) in enumerate((a, b)):
            runs[side].append(load(urls, duration / rounds, key))
    return [{k: round(sum(r[k] for r in runs[side]) / rounds, 3) for k in runs[side][0]} for side in (0, 1)]


def rss_kb(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def pid_of(cluster, name):
    with open(os.path.join(cluster["state"], "pids", f"{name}.pid")) as f:
        return int(f.read())


def upload_peak(addr, pid, key, index="uploads"):
    """Peak RSS (KiB) of pid, and its RSS before, while UPLOADS clients each send an
    UPLOAD_BYTES body to addr as fast as it takes them; and the statuses they got."""
    host, port = addr.rsplit(":", 1)
    before = rss_kb(pid)
    peak, stop, statuses = [before], threading.Event(), []

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kb(pid))
            time.sleep(0.02)

    def upload():
        s = socket.create_connection((host, int(port)))
        s.settimeout(10)  # a peer that answered and stopped reading must not hold a send for minutes
        chunk = b" " * (1 << 20)
        try:
            s.sendall(f"POST /indexes/{index}/documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {UPLOAD_BYTES}\r\n\r\n[".encode())
            sent = 1
            while sent < UPLOAD_BYTES and not select.select([s], [], [], 0)[0]:
                piece = chunk[:UPLOAD_BYTES - sent]
                s.sendall(piece)
                sent += len(piece)
        except OSError:
            pass
        s.settimeout(120)
        data = b""
        try:
            while not data.endswith(b"}") and (more := s.recv(65536)):
                data += more
        except OSError:
            pass
        s.close()
        statuses.append(int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.") else 0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    clients = [threading.Thread(target=upload) for _ in range(UPLOADS)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    time.sleep(0.5)
    stop.set()
    sampler.join()
    return before, peak[0], sorted(statuses)


def measure_uploads(state, rows, facts):
    """Row 8: what 10 concurrent 90 MiB uploads cost the gateway, with a wrong key and with a
    good one, beside a plain Meilisearch node given the same uploads."""
    plain = ExtraNode(state, "plain-uploads", UP_PLAIN)
    try:
        plain.start()
        wait_until("the plain node", lambda: plain.http.get("/health")[0] == 200, 60)
        with running_cluster("miroir-bench-uploads-", UP_KAFKA, UP_GATEWAY, UP_NODES, master_key=UPLOAD_MASTER,
                             extra="max_body_bytes = 104857600") as cluster:  # the default, not the tests' 4 MB
            gw = Http(cluster["gateway_url"], UPLOAD_MASTER)
            gw.wait_task(gw.post("/indexes", {"uid": "uploads", "primaryKey": "id"})[1]["taskUid"])
            gw_pid, gw_addr = pid_of(cluster, "gateway"), cluster["gateway_url"].split("//")[1]
            plain_pid, plain_addr = plain.proc.pid, plain.addr
            figures = {}
            for label, gw_key, plain_key in (("wrong key", "wrong", "wrong"), ("good key", UPLOAD_MASTER, NODE_KEY)):
                g = upload_peak(gw_addr, gw_pid, gw_key)
                p = upload_peak(plain_addr, plain_pid, plain_key)
                figures[label] = {"gateway": {"before_kb": g[0], "peak_kb": g[1], "statuses": g[2]},
                                  "plain_meilisearch": {"before_kb": p[0], "peak_kb": p[1], "statuses": p[2]}}
                log(f"uploads, {label}: gateway {g[0] // 1024} -> {g[1] // 1024} MiB {g[2]}; "
                    f"plain {p[0] // 1024} -> {p[1] // 1024} MiB {p[2]}")
            facts["uploads"] = dict(figures, count=UPLOADS, bytes_each=UPLOAD_BYTES)
    finally:
        plain.close()
    wrong, good = figures["wrong key"], figures["good key"]
    growth = lambda f: (f["peak_kb"] - f["before_kb"]) / 1024  # noqa: E731
    rows.append(("8", f"peak RSS growth (MiB), {UPLOADS} concurrent 90 MiB uploads with a wrong key: gateway vs "
                      "plain Meilisearch", growth(wrong["gateway"]), growth(wrong["plain_meilisearch"]) or 1.0,
                 "gateway ≤ 16 MiB", growth(wrong["gateway"]) <= 16))
    rows.append(("8b", f"peak RSS growth (MiB), {UPLOADS} concurrent 90 MiB uploads with a good key: gateway "
                       "(body_budget_bytes 256 MiB) vs plain Meilisearch", growth(good["gateway"]),
                 growth(good["plain_meilisearch"]) or 1.0, "gateway ≤ budget + 64 MiB",
                 growth(good["gateway"]) <= 256 + 64))


def topic_bytes(cluster, prefix):
    """Bytes on the broker's disk of every partition of the topics named prefix…"""
    total = 0
    data = os.path.join(cluster["state"], "kafka", "data")
    for d in os.listdir(data):
        if d.startswith(prefix):
            for f in os.listdir(os.path.join(data, d)):
                total += os.stat(os.path.join(data, d, f)).st_blocks * 512
    return total


def replica_state(gw, index, shard, node):
    for s in placement_of(gw, index):
        if s["shard"] == shard:
            return next((r["state"] for r in s["replicas"] if r["node"] == node), None)


def timed_rebuild(gw, index, shard, node, timeout=7200):
    """Seconds from the replica's new life to ready (it must have started anew)."""
    started = time.monotonic()
    wait_until(f"{node}'s rebuild of shard {shard} to start", lambda: replica_state(gw, index, shard, node) != "ready",
               120, 0.1)
    wait_until(f"{node}'s rebuild of shard {shard}", lambda: replica_state(gw, index, shard, node) == "ready", timeout,
               0.5)
    return time.monotonic() - started


def measure_history(cluster, gw, bodies, direct_rate, rows, facts):
    """Row 10: the corpus, then every document updated 4 more times (partial updates) and 10%
    deleted, at S=4, RF=2. One shard's two replicas are rebuilt: the first by a replay of the whole
    history (its peer is suspect too: no copy, and no checkpoint yet), the second by a copy of the
    first and the tail. Then checkpoints are turned on and Kafka's disk for the index is measured
    before and after the checkpoint and the deletion of the history below it."""
    index, shards = "hist", 4
    create_index(gw, index, shards, 2)
    started = time.monotonic()
    import_gateway(gw, index, bodies)
    live, deleted = {}, set()
    for body in bodies:
        for line in body.splitlines():
            d = json.loads(line)
            live[str(d["id"])] = d
    ids = list(live)
    for r in range(1, 5):
        tasks = []
        for k in range(0, len(ids), CHUNK):
            patch = "\n".join(json.dumps({"id": live[i]["id"], "round": r}) for i in ids[k:k + CHUNK])
            status, t = gw.req("PUT", f"/indexes/{index}/documents", raw=patch.encode(), ctype="application/x-ndjson")
            assert status == 202, t
            tasks.append(t["taskUid"])
        for t in tasks:
            assert gw.wait_task(t, timeout=7200)["status"] == "succeeded"
        for i in ids:
            live[i]["round"] = r
    gone = ids[::10]
    for k in range(0, len(gone), CHUNK):
        status, t = gw.post(f"/indexes/{index}/documents/delete-batch", [live[i]["id"] for i in gone[k:k + CHUNK]])
        assert gw.wait_task(t["taskUid"], timeout=7200)["status"] == "succeeded"
    for i in gone:
        deleted.add(i)
        del live[i]
    wait_until("the history applied", lambda: settled(gw, index), 3600, 1)
    load_s = time.monotonic() - started
    ndjson = sum(len(json.dumps(d, separators=(",", ":"))) + 1 for d in live.values())
    history_bytes = topic_bytes(cluster, f"miroir.idx.{storage_of(gw, index)}-")
    ends = {s["shard"]: s.get("endOffset") for s in placement_of(gw, index)}
    log(f"history: {sum(ends.values())} records for {len(live)} live documents ({ndjson >> 20} MiB as NDJSON), "
        f"{history_bytes >> 20} MiB in Kafka, loaded in {load_s:.0f} s")

    # both replicas of shard 0 differ from each other: the first is replayed, the second copied
    storage = storage_of(gw, index)
    shard = 0
    holders = [r["node"] for r in placement_of(gw, index)[shard]["replicas"]]
    node = Http(next(n["url"] for n in gw.get("/_miroir/nodes")[1]["results"] if n["id"] == holders[0]), NODE_KEY)
    status, t = node.post(f"/indexes/{storage}__s{shard}/documents", [{"id": "intruder"}])
    wait_node_task(node, t["taskUid"])
    status, verdict = gw.post("/_miroir/verify", {"indexes": [index], "repair": True})
    assert verdict["summary"]["divergent"] == 1, verdict
    in_shard = sum(1 for i in live if shard_of(i, shards) == shard)
    started = time.monotonic()
    first = wait_until("one replica's rebuild", lambda: next((n for n in holders
                                                              if replica_state(gw, index, shard, n) != "ready"), None),
                       120, 0.1)
    wait_until("the replayed replica", lambda: replica_state(gw, index, shard, first) == "ready", 7200, 0.5)
    replay_s = time.monotonic() - started
    second = next(n for n in holders if n != first)
    copy_s = timed_rebuild(gw, index, shard, second)
    wait_until("the rebuilt shard", lambda: settled(gw, index), 3600, 1)
    copy_rate, replay_rate = in_shard / copy_s, in_shard / replay_s
    log(f"rebuild of {in_shard} live documents from {ends[shard]} records: replay {replay_s:.0f} s, "
        f"copy and tail {copy_s:.0f} s")

    # checkpoints on: the ingest worker is restarted with the default thresholds
    env = dict(cluster["env"])
    env["MIROIR_EXTRA_CONFIG"] = env["MIROIR_EXTRA_CONFIG"].replace("checkpoint_min_records = 0",
                                                                    "checkpoint_min_records = 100000")
    subprocess.run([os.path.join(ROOT, "miroir.sh"), "stop", "ingest1"], env=env, cwd=ROOT, check=True)
    subprocess.run([os.path.join(ROOT, "miroir.sh"), "start"], env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)

    def kept():
        text = gw.s.get(gw.base + "/metrics", timeout=10).text
        return sum(1 for line in text.splitlines()
                   if line.startswith("miroir_shard_history_kept_from{index=\"hist\"") and float(line.split()[-1]) > 0)
    wait_until("every shard's checkpoint and cut", lambda: kept() == shards, 1800, 2)
    time.sleep(20)  # the broker deletes the segments below each partition's new start
    after_bytes = topic_bytes(cluster, f"miroir.idx.{storage}-") + topic_bytes(cluster, f"miroir.ckpt.{storage}-")
    log(f"Kafka's disk for {index}: {history_bytes >> 20} MiB before, {after_bytes >> 20} MiB after "
        f"(live NDJSON {ndjson >> 20} MiB)")
    facts["history"] = {"records": sum(ends.values()), "live_documents": len(live), "ndjson_bytes": ndjson,
                        "kafka_bytes_before": history_bytes, "kafka_bytes_after": after_bytes,
                        "shard_documents": in_shard, "shard_records": ends[shard], "replay_s": round(replay_s, 1),
                        "copy_s": round(copy_s, 1), "load_s": round(load_s)}
    rows.append(("10", f"history 5× the live documents: rebuild one replica ({in_shard} documents, {ends[shard]} "
                       "records) by a peer's copy and the tail, docs/s vs direct bulk import", copy_rate, direct_rate,
                 "≥ 0.8×", copy_rate / direct_rate >= 0.8))
    rows.append(("10b", "the same replica rebuilt by replaying the whole history, docs/s vs direct bulk import",
                 replay_rate, direct_rate, "(report)", None))
    rows.append(("10c", "Kafka's disk for that index (MiB), whole history vs the live documents as NDJSON",
                 history_bytes / 2 ** 20, ndjson / 2 ** 20, "(report)", None))
    rows.append(("10d", "Kafka's disk after the checkpoints and the history cut (MiB) vs the live documents as NDJSON",
                 after_bytes / 2 ** 20, ndjson / 2 ** 20, "≤ 2×", after_bytes <= 2 * ndjson))
    gw.wait_task(gw.req("DELETE", f"/indexes/{index}")[1]["taskUid"])


def cpu_seconds(pid):
    """User and system CPU time a process has used, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def extra_gateway(cluster, port, name, **settings):
    """Another gateway on the cluster, with settings of its own (MIROIR_<KEY> = value)."""
    env = dict(cluster["env"], MIROIR_CONFIG=os.path.join(cluster["state"], "miroir.conf"),
               MIROIR_GATEWAY_LISTEN=f"127.0.0.1:{port}", MIROIR_ACCESS_LOG="0",
               **{f"MIROIR_{k.upper()}": str(v) for k, v in settings.items()})
    log = open(os.path.join(cluster["state"], "logs", f"gateway-{name}.log"), "wb")
    proc = subprocess.Popen([os.path.join(BUILD, "gateway", "miroir-gateway")], env=env, stdout=log, stderr=log)
    gw = Http(f"http://127.0.0.1:{port}")
    wait_until(f"the {name} gateway", lambda: healthy(gw), 60)
    return proc, gw


def cpu_per_query(pid, url, duration, key=None):
    """µs of the process's CPU per query answered, over a load run."""
    before = cpu_seconds(pid)
    r = load([url], duration, key)
    return (cpu_seconds(pid) - before) * 1e6 / r["requests"], r


NGINX_CONF = """worker_processes 1;
master_process off;
daemon off;
error_log {dir}/error.log;
pid {dir}/nginx.pid;
events {{ worker_connections 256; }}
http {{
  access_log off;
  upstream node {{ server {node}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port};
    location /search {{
      proxy_pass http://node/indexes/{index}/search;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer {key}";
    }}
  }}
}}
"""


def nginx_floor(state, node_addr, index, duration):
    """µs of CPU per request of an nginx reverse proxy (one worker, keep-alive to the node): the
    floor for a proxy that parses nothing."""
    if not shutil.which("nginx"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "nginx"], check=True,
                       stdout=subprocess.DEVNULL, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    d = os.path.join(state, "nginx")
    os.makedirs(d, exist_ok=True)
    port = 31790
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(dir=d, node=node_addr, port=port, index=index, key=NODE_KEY))
    proc = subprocess.Popen(["nginx", "-c", os.path.join(d, "nginx.conf"), "-p", d], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until("nginx", lambda: subprocess.run(["curl", "-sf", "-o", "/dev/null", "-X", "POST", "-d", "{}", "-H",
                                                    "Content-Type: application/json",
                                                    f"http://127.0.0.1:{port}/search"]).returncode == 0, 30)
        return cpu_per_query(proc.pid, f"http://127.0.0.1:{port}/search", duration)
    finally:
        proc.terminate()
        proc.wait(10)


def throttle(pid, quota_us, name="miroir-bench-slow"):
    """Caps a process at quota_us of CPU per 100 ms (cgroup v1 cpu); returns the group's directory."""
    d = os.path.join("/sys/fs/cgroup/cpu", name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "cpu.cfs_period_us"), "w") as f:
        f.write("100000")
    with open(os.path.join(d, "cpu.cfs_quota_us"), "w") as f:
        f.write(str(quota_us))
    for task in os.listdir(f"/proc/{pid}/task"):  # every thread of it
        with open(os.path.join(d, "tasks"), "w") as f:
            f.write(task)
    return d


def unthrottle(pid, d):
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open("/sys/fs/cgroup/cpu/tasks", "w") as f:
                f.write(task)
        except OSError:
            pass
    for _ in range(50):
        try:
            os.rmdir(d)
            return
        except OSError:
            time.sleep(0.1)


def metric(gw, name):
    for line in gw.s.get(gw.base + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def measure_read_path(cluster, gw, body, duration, rows, facts):
    """Rows 11 and 12: the gateway's CPU per query at S = 1, 4, 16 and 64 in one phase and in two
    (two extra gateways on the cluster, one for each), beside an nginx reverse proxy's; and the
    tail of searches when one node of an RF=2 index turns slow (a cgroup CPU quota), hedging on
    and off, against the same cluster healthy. On a 100,000-document subset."""
    procs = []
    try:
        one_proc, one = extra_gateway(cluster, 31720, "one-phase", two_phase_min_shards=0)
        procs.append(one_proc)
        two_proc, two = extra_gateway(cluster, 31721, "two-phases", two_phase_min_shards=2)
        procs.append(two_proc)
        apart_proc, apart = extra_gateway(cluster, 31723, "per-shard", two_phase_min_shards=0, batch_shard_searches=0)
        procs.append(apart_proc)
        whole_proc, whole = extra_gateway(cluster, 31724, "whole-windows", two_phase_min_shards=0, narrow_shard_windows=0)
        procs.append(whole_proc)
        curl_proc, curl = extra_gateway(cluster, 31725, "libcurl", two_phase_min_shards=0, own_node_client=0)
        procs.append(curl_proc)
        cpu = {}
        for s in (1, 4, 16, 64):
            uid = f"cpu{s}"
            create_index(gw, uid, s, 1)
            import_gateway(gw, uid, [body])
            gateways = [("one", one, one_proc), ("two", two, two_proc), ("per-shard", apart, apart_proc),
                        ("whole-windows", whole, whole_proc), ("libcurl", curl, curl_proc)]
            if s == 64:
                # 21 or 22 shard indexes a node, more than Meilisearch keeps open: under a request
                # per shard it reopens them over and over, and 1.21 panics ("Too many spurious
                # wake ups while trying to open the index") and stops answering, even /health.
                gateways = [gw_ for gw_ in gateways if gw_[0] != "per-shard"]
            for label, g, proc in gateways:
                load([f"{g.base}/indexes/{uid}/search"], 2)  # warm-up
                us, r = cpu_per_query(proc.pid, f"{g.base}/indexes/{uid}/search", duration)
                cpu[(s, label)] = {"us": us, "p50_ms": r["p50_ms"], "throughput": r["throughput"]}
                log(f"gateway CPU per query, S={s}, {label}: {us:.0f} µs (p50 {r['p50_ms']:.1f} ms)")
            if s > 1:  # a node keeps about 18 indexes open (docs/operations.md): no more shard indexes than that
                gw.wait_task(gw.req("DELETE", f"/indexes/{uid}")[1]["taskUid"])
        placement = placement_of(gw, "cpu1")[0]["replicas"][0]["node"]
        node_addr = next(n["url"] for n in gw.get("/_miroir/nodes")[1]["results"] if n["id"] == placement).split("//")[1]
        ngx_us, ngx = nginx_floor(cluster["state"], node_addr, f"{storage_of(gw, 'cpu1')}__s0", duration)
        log(f"nginx CPU per request: {ngx_us:.0f} µs (p50 {ngx['p50_ms']:.1f} ms)")
        gw.wait_task(gw.req("DELETE", "/indexes/cpu1")[1]["taskUid"])
        facts["cpu_per_query"] = {f"S={s} {label}": v for (s, label), v in cpu.items()}
        facts["cpu_per_query"]["nginx"] = {"us": ngx_us, "p50_ms": ngx["p50_ms"]}
        rows.append(("11/S=1", "gateway CPU per query (µs), S=1 (the node's answer passed through) vs an nginx reverse "
                               "proxy's per request", cpu[(1, "one")]["us"], ngx_us, "(report)", None))
        for s in (1, 4, 64):
            rows.append((f"11/S={s}/c", f"gateway CPU per query (µs), S={s}: the gateway's own node client vs libcurl",
                         cpu[(s, "one")]["us"], cpu[(s, "libcurl")]["us"], "(report)", None))
        for s, target in ((4, 150), (16, None), (64, 1000)):
            best = min(cpu[(s, "one")]["us"], cpu[(s, "two")]["us"])
            apart_us = cpu[(s, "per-shard")]["us"] if (s, "per-shard") in cpu else None
            rows.append((f"11/S={s}", f"gateway CPU per query (µs), S={s}: one phase, a node's shards in one request" +
                         (", vs one request per shard" if apart_us else " (one request per shard is not measured: it "
                          "wedges the nodes, which hold more shard indexes than they keep open)"), cpu[(s, "one")]["us"],
                         apart_us,
                         f"≤ {target} µs" if target else "(report)", best <= target if target else None))
            rows.append((f"11/S={s}/2", f"gateway CPU per query (µs), S={s}: two phases vs one", cpu[(s, "two")]["us"],
                         cpu[(s, "one")]["us"], "(report)", None))
            rows.append((f"11/S={s}/w", f"gateway CPU per query (µs), S={s}: shards first asked for their likely share "
                                        "of the page vs every shard asked for the whole window",
                         cpu[(s, "one")]["us"], cpu[(s, "whole-windows")]["us"], "(report)", None))

        # the tail when a node turns slow
        create_index(gw, "tail", 4, 2)
        import_gateway(gw, "tail", [body])
        nohedge_proc, nohedge = extra_gateway(cluster, 31722, "no-hedging", hedge_percent=0)
        procs.append(nohedge_proc)
        url = lambda g: f"{g.base}/indexes/tail/search"  # noqa: E731
        for g in (gw, nohedge):
            load([url(g)], 3)
        healthy_run = load([url(gw)], duration)
        victim = next(r["node"] for s in placement_of(gw, "tail") for r in s["replicas"] if r["node"] != "n4")
        vpid = pid_of(cluster, f"node{victim[1:]}")
        tail = {"healthy": healthy_run}
        if vpid:
            d = throttle(vpid, 5000)  # 5% of one core
            try:
                time.sleep(2)
                before = (metric(gw, "miroir_hedged_requests_total"), metric(gw, "miroir_shard_requests_total"))
                tail["slow, hedging"] = load([url(gw)], duration)
                after = (metric(gw, "miroir_hedged_requests_total"), metric(gw, "miroir_shard_requests_total"))
                tail["slow, no hedging"] = load([url(nohedge)], duration)
            finally:
                unthrottle(vpid, d)
            extra = (after[0] - before[0]) / max(1, after[1] - before[1] - (after[0] - before[0]))
            tail["hedges_share"] = extra
            for k in ("slow, hedging", "slow, no hedging"):
                log(f"tail, {k}: p50 {tail[k]['p50_ms']:.1f} ms, p99 {tail[k]['p99_ms']:.1f}, "
                    f"p99.9 {tail[k]['p999_ms']:.1f} (healthy p99 {healthy_run['p99_ms']:.1f})")
            facts["tail"] = tail
            h, n = tail["slow, hedging"], tail["slow, no hedging"]
            rows.append(("12", f"one node of 4 slowed to 5% of a core (RF=2): search p99 (ms) with hedging, "
                               f"{extra * 100:.1f}% extra shard requests, vs the healthy p99",
                         h["p99_ms"], healthy_run["p99_ms"], "≤ 1.5×, ≤ 5% extra",
                         h["p99_ms"] <= 1.5 * healthy_run["p99_ms"] and extra <= 0.05))
            rows.append(("12b", "the same, p99.9 (ms), with hedging vs healthy", h["p999_ms"], healthy_run["p999_ms"],
                         "(report)", None))
            rows.append(("12c", "the same without hedging (replicas still chosen by latency): p99 (ms) vs healthy",
                         n["p99_ms"], healthy_run["p99_ms"], "(report)", None))
            rows.append(("12d", "the same, p50 (ms), with hedging vs healthy", h["p50_ms"], healthy_run["p50_ms"],
                         "(report)", None))
        gw.wait_task(gw.req("DELETE", "/indexes/tail")[1]["taskUid"])  # the cpu indexes went once measured
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)


CGROUPS = "/sys/fs/cgroup/memory"


class MemoryCap:
    """A cgroup v1 memory group capped at `limit` bytes (page cache of the memory-mapped index
    included), removed by close() once its processes have left it."""

    def __init__(self, name, limit):
        self.dir = os.path.join(CGROUPS, name)
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, "memory.limit_in_bytes"), "w") as f:
            f.write(str(limit))

    def join(self):
        """For preexec_fn: the child enters the group before it execs."""
        with open(os.path.join(self.dir, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def close(self, pids):
        for pid in pids:  # back to the root group, so that the group can go
            try:
                with open(os.path.join(CGROUPS, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
            except OSError:
                pass
        for _ in range(50):
            try:
                os.rmdir(self.dir)
                return
            except OSError:
                time.sleep(0.1)


def port_refuses(addr):
    host, port = addr.rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) != 0


def restart(pid, log_path, cap=None):
    """Stops a Meilisearch process and starts it again with the same arguments, inside cap if
    given; returns the new Popen once it answers /health."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0") if a]
    cwd = os.readlink(f"/proc/{pid}/cwd")
    os.kill(pid, 15)
    wait_until(f"process {pid} to stop", lambda: not os.path.exists(f"/proc/{pid}") or
               open(f"/proc/{pid}/stat").read().split()[2] == "Z", 60, 0.1)
    addr = argv[argv.index("--http-addr") + 1]
    # A leader thread shows as a zombie while its other threads still hold the listening socket.
    wait_until(f"{addr} to be free", lambda: port_refuses(addr), 60, 0.1)
    proc = subprocess.Popen(argv, cwd=cwd, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=cap.join if cap else None)
    try:
        wait_until(f"{addr} again", lambda: healthy(Http(f"http://{addr}")), 120)
    except AssertionError:
        with open(log_path, "rb") as f:
            tail = f.read()[-2000:].decode(errors="replace")
        raise AssertionError(f"{addr} did not come back (exit {proc.poll()}); its log ends:\n{tail}") from None
    return proc


def drop_page_cache():
    """Pages cached before a process entered its group stay charged to the root group, and it
    would read them for free: empty the cache, so that every page it reads is its group's."""
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")


def measure_memory_cap(cluster, gw, baseline, n4, nodes, index, duration, rows, facts):
    """The headline: an index bigger than one node's memory. Each Meilisearch process gets a cgroup
    cap M well below the whole index's size on disk and above one shard's; the same queries run
    against (a) one capped node holding the whole index, (b) Miroir's 4 capped nodes, one shard
    each (S=4, RF=1), (c) the same one node uncapped. Indexing happened uncapped; each set-up
    starts with an empty page cache and a warm-up run."""
    whole = baseline.http.get("/stats")[1]["databaseSize"]
    per_node = {n: Http(url, NODE_KEY).get("/stats")[1]["databaseSize"] for n, url in nodes.items()}
    cap_bytes = max(int(whole * 0.4), int(max(per_node.values()) * 1.3), 192 << 20)  # the process needs some
    facts["memory_cap"] = {"whole_index_bytes": whole, "node_bytes": per_node, "cap_bytes": cap_bytes}
    log(f"memory cap: whole index {whole >> 20} MiB on one node; nodes {[v >> 20 for v in per_node.values()]} MiB; "
        f"cap {cap_bytes >> 20} MiB")
    single = [f"{baseline.url}/indexes/packages/search"]
    through_gw = [f"{cluster['gateway_url']}/indexes/{index}/search"]
    results, caps, pids = {}, [], {}

    def run(label, urls, key):
        drop_page_cache()
        load(urls, max(3, duration / 4), key)  # warm-up
        results[label] = load(urls, duration, key)
        log(f"memory cap, {label}: p50 {results[label]['p50_ms']:.1f} ms, p99 {results[label]['p99_ms']:.1f} ms, "
            f"{results[label]['throughput']:.0f} q/s")

    try:
        run("c: one node, uncapped", single, NODE_KEY)
        cap = MemoryCap("miroir-bench-single", cap_bytes)
        caps.append(cap)
        baseline.proc = restart(baseline.proc.pid, os.path.join(baseline.dir, "meilisearch.log"), cap)
        pids["baseline"] = baseline.proc.pid
        run("a: one node capped", single, NODE_KEY)
        for name in sorted(nodes):
            cap = MemoryCap(f"miroir-bench-{name}", cap_bytes)
            caps.append(cap)
            if name == "n4":
                n4.proc = restart(n4.proc.pid, os.path.join(n4.dir, "meilisearch.log"), cap)
                pids[name] = n4.proc.pid
            else:
                proc = restart(pid_of(cluster, f"node{name[1:]}"), os.path.join(cluster["state"], "logs",
                                                                                 f"node{name[1:]}.log"), cap)
                with open(os.path.join(cluster["state"], "pids", f"node{name[1:]}.pid"), "w") as f:
                    f.write(str(proc.pid))  # so that miroir.sh down stops it
                pids[name] = proc.pid
        wait_until("the gateway to see every node", lambda: gw.get("/health")[1]["cluster"] == "green", 60)
        run("b: Miroir, 4 capped nodes", through_gw, None)
    finally:
        for cap in caps:
            cap.close(pids.values())
    facts["memory_cap"]["results"] = results
    a, b, c = (results[k] for k in ("a: one node capped", "b: Miroir, 4 capped nodes", "c: one node, uncapped"))
    what = f"(cap M = {cap_bytes >> 20} MiB per Meilisearch process; the index is {whole >> 20} MiB on one node)"
    rows.append(("9", f"index bigger than a node's memory: search p50 (ms), Miroir on 4 capped nodes vs one "
                      f"uncapped node {what}", b["p50_ms"], c["p50_ms"], "≤ 1.5×", b["p50_ms"] / c["p50_ms"] <= 1.5))
    rows.append(("9b", "the same: search p99 (ms), Miroir on 4 capped nodes vs one uncapped node", b["p99_ms"],
                 c["p99_ms"], "(report)", None))
    rows.append(("9c", "the same: one capped node holding the whole index vs one uncapped node, p50 (ms)",
                 a["p50_ms"], c["p50_ms"], "several times slower", a["p50_ms"] / c["p50_ms"] >= 2))
    rows.append(("9d", "the same: throughput (queries/s), Miroir on 4 capped nodes vs one capped node",
                 b["throughput"], a["throughput"], "(report)", None))
    rows.append(("9e", "the same: throughput (queries/s), Miroir on 4 capped nodes vs one uncapped node",
                 b["throughput"], c["throughput"], "(report)", None))


def measure_memory_alone(limit, duration, rows, facts):
    """Row 9 by itself (./miroir.sh bench --only memory): the corpus on one node and, through the
    gateway, on 4 nodes at S=4, RF=1, set up as the whole run sets them up for rows 3 and 2."""
    bodies, total = chunks_of(CORPUS, limit)
    state = tempfile.mkdtemp(prefix="miroir-bench-")
    baseline, n4 = ExtraNode(state, "baseline", BASE), ExtraNode(state, "n4", N4)
    try:
        baseline.start()
        log(f"direct bulk import into one node: {import_direct(baseline.http, bodies):.1f} s ({total} documents)")
        with running_cluster("miroir-bench-", KAFKA, GATEWAY, NODES, extra=CLUSTER_EXTRA) as cluster:
            gw = cluster["gateway"]
            nodes = {f"n{i}": f"http://127.0.0.1:{NODES + i - 1}" for i in (1, 2, 3)}
            n4.start()
            nodes["n4"] = n4.url
            assert gw.post("/_miroir/nodes", {"id": "n4", "url": n4.url})[0] == 202
            wait_until("n4 to join", lambda: "n4" in {n["id"] for n in gw.get("/_miroir/nodes")[1]["results"]}, 60)
            create_index(gw, "s4", 4, 1)
            log(f"ingest RF=1 (S=4, 4 nodes): {import_gateway(gw, 's4', bodies):.1f} s")
            held = {r["node"] for s in placement_of(gw, "s4") for r in s["replicas"]}
            assert held == set(nodes), placement_of(gw, "s4")  # one shard a node
            measure_memory_cap(cluster, gw, baseline, n4, nodes, "s4", duration, rows, facts)
    finally:
        n4.close()
        baseline.close()
        shutil.rmtree(state, ignore_errors=True)
    facts["documents_memory"] = total


def measure_history_alone(rows, facts):
    """Row 10 by itself (./miroir.sh bench --only history): on the whole corpus, with its baseline,
    a direct bulk import into one node, and the cluster set up as the whole run sets it up."""
    bodies, total = chunks_of(CORPUS, 0)
    state = tempfile.mkdtemp(prefix="miroir-bench-")
    baseline = ExtraNode(state, "baseline", BASE)
    try:
        baseline.start()
        direct_s = import_direct(baseline.http, bodies)
        log(f"direct bulk import into one node: {direct_s:.1f} s ({total} documents)")
        baseline.close()  # its memory is the cluster's during the run
        with running_cluster("miroir-bench-", KAFKA, GATEWAY, NODES, extra=CLUSTER_EXTRA,
                             kafka_extra=KAFKA_EXTRA) as cluster:
            measure_history(cluster, cluster["gateway"], bodies, total / direct_s, rows, facts)
    finally:
        baseline.close()
        shutil.rmtree(state, ignore_errors=True)
    facts["documents_history"] = total


def create_to_succeeded(http, name, count=10):
    """Median ms from POST /indexes to its task read as succeeded (polled every 5 ms)."""
    times = []
    for k in range(count):
        started = time.monotonic()
        status, t = http.post("/indexes", {"uid": f"{name}-{k}", "primaryKey": "id"})
        assert status == 202, t
        while http.get(f"/tasks/{t['taskUid']}")[1]["status"] != "succeeded":
            time.sleep(0.005)
        times.append((time.monotonic() - started) * 1000)
    for k in range(count):
        http.req("DELETE", f"/indexes/{name}-{k}")
    return sorted(times)[count // 2]


def shard_urls(gw, index, nodes):
    storage = storage_of(gw, index)
    return [f"{nodes[s['replicas'][0]['node']]}/indexes/{storage}__s{s['shard']}/search" for s in placement_of(gw, index)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a 100k-document subset and shorter load runs")
    ap.add_argument("--only", choices=["uploads", "placement", "memory", "history", "readpath"],
                    help="run these rows alone and merge them into docs/benchmarks.*")
    args = ap.parse_args()
    if args.only == "placement":
        merge_report([], {"placement": placement_tables(args.quick)}, "placement")
        return
    if args.only == "uploads":
        rows, facts = [], {}
        state = tempfile.mkdtemp(prefix="miroir-bench-")
        try:
            measure_uploads(state, rows, facts)
        finally:
            shutil.rmtree(state, ignore_errors=True)
        merge_report(rows, facts, "uploads")
        return
    limit = 100_000 if args.quick else 0
    duration = 8 if args.quick else 20
    if args.only == "readpath":  # rows 11 and 12 measure a 100,000-document index in any run
        rows, facts = [], {}
        bodies, _ = chunks_of(CORPUS, 100_000)
        with running_cluster("miroir-bench-", KAFKA, GATEWAY, NODES, extra=CLUSTER_EXTRA,
                             kafka_extra=KAFKA_EXTRA) as cluster:
            measure_read_path(cluster, cluster["gateway"], bodies[0], duration, rows, facts)
        merge_report(rows, facts, "readpath")
        return
    if args.only in ("memory", "history"):
        if args.quick:
            ap.error(f"--only {args.only} measures the whole corpus, into the full report: no --quick")
        rows, facts = [], {}
        if args.only == "memory":
            measure_memory_alone(limit, duration, rows, facts)
        else:
            measure_history_alone(rows, facts)
        merge_report(rows, facts, args.only)
        return
    rows, facts = [], {"mode": "quick" if args.quick else "full", "concurrency": CONCURRENCY,
                       "date": time.strftime("%Y-%m-%d")}
    bodies, total = chunks_of(CORPUS, limit)
    facts["documents"] = total
    log(f"corpus: {total} documents in {len(bodies)} requests of up to {CHUNK}")
    state = tempfile.mkdtemp(prefix="miroir-bench-")

    baseline = ExtraNode(state, "baseline", BASE)
    n4 = ExtraNode(state, "n4", N4)
    try:
        baseline.start()
        direct_s = import_direct(baseline.http, bodies)
        direct_rate = total / direct_s
        log(f"direct bulk import into one node: {direct_s:.1f} s, {direct_rate:.0f} docs/s")
        facts["direct_import_docs_per_s"] = round(direct_rate)

        with running_cluster("miroir-bench-", KAFKA, GATEWAY, NODES, extra=CLUSTER_EXTRA,
                             kafka_extra=KAFKA_EXTRA) as cluster:
            gw = cluster["gateway"]
            nodes = {f"n{i}": f"http://127.0.0.1:{NODES + i - 1}" for i in (1, 2, 3)}

            # rows 4 and 5: RF=2 ingest at S=16 over 3 nodes, then a 4th node joins
            create_index(gw, "s16", 16, 2)
            t = import_gateway(gw, "s16", bodies)
            rows.append(("4", "ingest RF=2 (S=16, 3 nodes), docs/s vs direct bulk import", total / t, direct_rate,
                         "≥ 0.4×", (total / t) / direct_rate >= 0.4))
            log(f"ingest RF=2: {t:.1f} s, {total / t:.0f} docs/s")
            before = {(s["shard"], r["node"]) for s in placement_of(gw, "s16") for r in s["replicas"]}
            hrw = {(s, n) for s in range(16) for n in hrw_target(storage_of(gw, "s16"), s, ["n1", "n2", "n3", "n4"], 2)}
            n4.start()
            nodes["n4"] = n4.url
            started = time.monotonic()
            status, _ = gw.post("/_miroir/nodes", {"id": "n4", "url": n4.url})
            assert status == 202
            wait_until("the rebalance", lambda: settled(gw, "s16") and
                       any(r["node"] == "n4" for s in placement_of(gw, "s16") for r in s["replicas"]), 7200, 0.5)
            rebuild_s = time.monotonic() - started
            after = {(s["shard"], r["node"]) for s in placement_of(gw, "s16") for r in s["replicas"]}
            moved = after - before
            moved_docs = 0
            node4 = Http(n4.url, NODE_KEY)
            for shard, _ in moved:
                moved_docs += node4.get(f"/indexes/{storage_of(gw, 's16')}__s{shard}/stats")[1]["numberOfDocuments"]
            rate = moved_docs / rebuild_s
            facts["rebalance"] = {"moved": len(moved), "hrw_moves": len(hrw - before), "documents": moved_docs,
                                  "seconds": round(rebuild_s, 1)}
            # bounded loads: n4 takes its share, ceil(16*2/4) = 8 replicas, all moved onto it
            rows.append(("5", f"rebalance 3→4 nodes, S=16 RF=2: {len(moved)} replicas moved, all onto n4 (plain "
                              f"HRW: {len(hrw - before)}); rebuild docs/s vs direct bulk import", rate, direct_rate,
                         "≥ 0.8×, moves ≤ 1.2× HRW's 8 on average",
                         rate / direct_rate >= 0.8 and len(moved) <= 1.2 * 8 and all(n == "n4" for _, n in moved)))
            log(f"rebalance: {len(moved)} moved, {moved_docs} docs in {rebuild_s:.1f} s")
            gw.wait_task(gw.req("DELETE", "/indexes/s16")[1]["taskUid"])

            # row 3: RF=1 ingest at S=4 over the 4 nodes
            create_index(gw, "s4", 4, 1)
            t = import_gateway(gw, "s4", bodies)
            rows.append(("3", "ingest RF=1 (S=4, 4 nodes), docs/s vs direct bulk import", total / t, direct_rate,
                         "≥ 0.8×", (total / t) / direct_rate >= 0.8))
            log(f"ingest RF=1: {t:.1f} s, {total / t:.0f} docs/s")

            # row 2: sharded search against the floor and against one node holding everything
            gw_url = f"{cluster['gateway_url']}/indexes/s4/search"
            gw_pid = pid_of(cluster, "gateway")
            rss_before = rss_kb(gw_pid)
            load([gw_url], 2)  # warm-up
            g, floor = compare(([gw_url], None), (shard_urls(gw, "s4", nodes), NODE_KEY), 2 * duration)
            single = load([f"{baseline.url}/indexes/packages/search"], duration, NODE_KEY)
            facts["search_s4"] = {"gateway": g, "floor": floor, "single_node": single}
            rows.append(("2", "search S=4 RF=1: gateway p50 vs the floor (4 shard searches in parallel, direct)",
                         g["p50_ms"], floor["p50_ms"], "≤ 1.1×", g["p50_ms"] / floor["p50_ms"] <= 1.1))
            rows.append(("2b", "search S=4: gateway throughput vs the floor", g["throughput"], floor["throughput"],
                         "(report)", None))
            rows.append(("2c", "search S=4: gateway p50 vs one node holding the whole corpus", g["p50_ms"],
                         single["p50_ms"], "(report)", None))
            facts["gateway_rss_kb"] = {"before_load": rss_before, "peak": rss_kb(gw_pid, "VmHWM")}

            # row 9: the same index, bigger than each node's memory
            measure_memory_cap(cluster, gw, baseline, n4, nodes, "s4", duration, rows, facts)

            # row 1: one shard, through the gateway or straight to its node
            create_index(gw, "s1", 1, 1)
            import_gateway(gw, "s1", bodies)
            load([f"{cluster['gateway_url']}/indexes/s1/search"], 2)
            g1, d1 = compare(([f"{cluster['gateway_url']}/indexes/s1/search"], None),
                             (shard_urls(gw, "s1", nodes), NODE_KEY), 2 * duration)
            facts["search_s1"] = {"gateway": g1, "direct": d1}
            rows.append(("1", "search S=1 RF=1: gateway p50 vs the same node directly", g1["p50_ms"], d1["p50_ms"],
                         "≤ 1.10×", g1["p50_ms"] / d1["p50_ms"] <= 1.10))
            rows.append(("1b", "search S=1: gateway throughput vs the node directly", g1["throughput"],
                         d1["throughput"], "≥ 0.9×", g1["throughput"] / d1["throughput"] >= 0.9))
            for ix in ("s1", "s4"):
                gw.wait_task(gw.req("DELETE", f"/indexes/{ix}")[1]["taskUid"])

            # row 7: ingest memory with the whole corpus waiting in Kafka (backpressure)
            create_index(gw, "backlog", 4, 1)
            subprocess.run([os.path.join(ROOT, "miroir.sh"), "stop", "ingest1"], env=cluster["env"], cwd=ROOT)
            tasks = [gw.post("/indexes/backlog/documents", raw=b, ctype="application/x-ndjson")[1]["taskUid"]
                     for b in bodies]
            subprocess.run([os.path.join(ROOT, "miroir.sh"), "start"], env=cluster["env"], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)
            ingest_pid = pid_of(cluster, "ingest1")
            peak = [0]
            stop = threading.Event()

            def sample():
                while not stop.is_set():
                    try:
                        peak[0] = max(peak[0], rss_kb(ingest_pid))
                    except OSError:
                        return
                    time.sleep(0.2)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            gw.wait_task(tasks[-1], timeout=7200)
            stop.set()
            sampler.join()
            facts["ingest_rss_kb"] = {"backlog_records": total, "peak": peak[0]}
            rows.append(("7", f"ingest peak RSS draining a {total}-record backlog (MiB)", peak[0] / 1024, None,
                         "bounded", peak[0] < 1024 * 1024))
            rows.append(("7b", "gateway peak RSS under search load (MiB)", facts["gateway_rss_kb"]["peak"] / 1024, None,
                         "(report)", None))
            gw.wait_task(gw.req("DELETE", "/indexes/backlog")[1]["taskUid"])

            # row 13: an index created, to its task succeeded, against one node creating one
            gw_ms, node_ms = create_to_succeeded(gw, "created"), create_to_succeeded(baseline.http, "created")
            facts["create_ms"] = {"gateway": gw_ms, "node": node_ms}
            log(f"create to succeeded: gateway {gw_ms:.0f} ms, one node {node_ms:.0f} ms")
            rows.append(("13", "POST /indexes to its task succeeded (ms, median of 10), S=4 RF=2 vs one node",
                         gw_ms, node_ms, "(report)", None))

            # rows 11 and 12: the read path's CPU, and its tail under a slow node
            measure_read_path(cluster, gw, bodies[0], duration, rows, facts)

            # row 10: a history five times the live documents
            measure_history(cluster, gw, bodies, direct_rate, rows, facts)
        measure_uploads(state, rows, facts)
    finally:
        n4.close()
        baseline.close()
        shutil.rmtree(state, ignore_errors=True)

    # row 6: merge CPU per query, canned shard answers
    merge = [json.loads(line) for line in subprocess.run([MERGEBENCH, "3000"], capture_output=True, text=True,
                                                           check=True).stdout.splitlines()]
    facts["merge"] = merge
    one = merge[0]["merge_us"]
    for m in merge:
        rows.append((f"6/S={m['shards']}", f"merge and reply CPU per query (µs), S={m['shards']}, limit 20; reading "
                                          f"the S answers {m['parse_us']:.0f} µs (parsed whole: "
                                          f"{m['whole_parse_us']:.0f} µs)", m["merge_us"], one, "~ k log S", None))
    facts["placement"] = placement_tables(args.quick)
    report(rows, facts, args.quick)
    if args.quick:
        add_quick_rows(rows, facts)


def placement_tables(quick):
    """The placement simulator's tables (deterministic: the same on every run)."""
    log("placement simulator")
    out = subprocess.run([PLACESIM] + (["--quick"] if quick else []), capture_output=True, text=True)
    assert out.returncode == 0, "the per-index bound failed:\n" + out.stdout[-2000:]
    return out.stdout


def merge_report(rows, facts, only):
    """Rows measured alone replace their namesakes in the last full report, which keeps the rest."""
    docs = os.path.join(ROOT, "docs")
    with open(os.path.join(docs, "benchmarks.json")) as f:
        last = json.load(f)
    fresh = {r[0]: r for r in rows}
    kept = [tuple(r[k] for k in ("row", "what", "value", "baseline", "target", "met")) for r in last["rows"]
            if r["row"] not in fresh]
    merged_facts = dict(last["facts"], **facts)
    if "date" not in merged_facts:  # written before reports kept their date
        with open(os.path.join(docs, "benchmarks.md")) as f:
            merged_facts["date"] = re.search(r" on (\d{4}-\d{2}-\d{2})", f.read()).group(1)
    merged_facts.setdefault("measured_alone", {})[only] = time.strftime("%Y-%m-%d")
    if merged_facts.get("quick_rows"):  # a row measured alone on the whole corpus is no quick run's any more
        merged_facts["quick_rows"]["rows"] = [r for r in merged_facts["quick_rows"]["rows"] if r not in fresh]
        if not merged_facts["quick_rows"]["rows"]:
            del merged_facts["quick_rows"]
    report(kept + rows, merged_facts, merged_facts.get("mode") == "quick")


def add_quick_rows(rows, facts):
    """Rows a quick run measured that the last full report lacks are added to it, each marked as
    measured on the subset, until a full run measures them on the whole corpus."""
    with open(os.path.join(ROOT, "docs", "benchmarks.json")) as f:
        last = json.load(f)
    quick_before = set(last["facts"].get("quick_rows", {}).get("rows", []))  # an earlier quick run's
    full_rows = [r for r in last["rows"] if r["row"] not in quick_before]
    known = {r["row"] for r in full_rows}
    new = [r for r in rows if r[0] not in known]
    if not new or last["facts"].get("mode") == "quick":
        return
    full = [tuple(r[k] for k in ("row", "what", "value", "baseline", "target", "met")) for r in full_rows]
    merged_facts = dict(last["facts"])
    merged_facts["quick_rows"] = {"rows": [r[0] for r in new], "documents": facts["documents"], "date": facts["date"]}
    report(full + [(k, f"{what} [quick run]", v, b, t, m) for k, what, v, b, t, m in new], merged_facts, False)


def report(rows, facts, quick):
    lines = ["# Benchmarks", "",
             f"Measured by `./miroir.sh bench{' --quick' if quick else ''}` on {facts['date']}, "
             f"{facts['documents']} documents of `packages.jsonl.gz`, {CONCURRENCY} concurrent keep-alive clients "
             "(`tests/bench/loadgen.c`) cycling through the 400 queries of `tests/bench/queries.jsonl`. "
             "Every ratio's baseline was measured in the same run, on the same machine." +
             "".join(f" The {what} rows were measured alone, by `./miroir.sh bench --only {what}`, on {day}."
                     for what, day in facts.get("measured_alone", {}).items()) +
             (f" The rows marked [quick run] ({', '.join(facts['quick_rows']['rows'])}) were measured by "
              f"`./miroir.sh bench --quick` on {facts['quick_rows']['date']}, on {facts['quick_rows']['documents']} "
              "documents: a full run has not measured them yet, and will replace them; their figures are in "
              "[benchmarks-quick.md](benchmarks-quick.md)." if facts.get("quick_rows") else ""), "",
             "| row | what | Miroir | baseline | ratio | target | met |", "|---|---|---|---|---|---|---|"]
    for key, what, value, base, target, met in rows:
        ratio = f"{value / base:.2f}×" if base else "—"
        lines.append(f"| {key} | {what} | {value:.2f} | {base:.2f} | {ratio} | {target} | "
                     f"{'yes' if met else ('no' if met is False else '—')} |" if base else
                     f"| {key} | {what} | {value:.2f} | — | — | {target} | {'yes' if met else ('no' if met is False else '—')} |")
    name = "benchmarks-quick" if quick else "benchmarks"  # a quick run never replaces the full one
    lines += ["", f"Raw figures: [{name}.json]({name}.json).", ""]
    if facts.get("placement"):
        lines += ["## Placement: plain rendezvous hashing against bounded loads", "",
                  "`./miroir.sh placesim` (`tests/bench/placesim.c`, over `shared/place.c`, the code the cluster "
                  "runs). max/mean: the fullest node's replicas of an index over the mean S·R/N; the bound is "
                  "⌈S·R/N⌉ over the mean. Moves: replicas whose node changed, summed over the index names, for "
                  "a join (node N+1) and a leave (the last node), against what plain HRW moves for the same names "
                  "(HRW moves a replica exactly when the new node enters its shard's top R, R/(N+1) of them on "
                  "average). Rows where S·R < N/4 and S < 64 are left out: one replica per node at most.", "",
                  facts["placement"].strip(), ""]
    text = "\n".join(lines)
    print(text)
    docs = os.path.join(ROOT, "docs")
    with open(os.path.join(docs, f"{name}.json"), "w") as f:
        json.dump({"rows": [dict(zip(("row", "what", "value", "baseline", "target", "met"), r)) for r in rows],
                   "facts": facts}, f, indent=1)
    notes = os.path.join(HERE, "notes.md")
    with open(os.path.join(docs, f"{name}.md"), "w") as f:
        f.write(text)
        if os.path.exists(notes):
            with open(notes) as n:
                f.write("\n" + n.read())


if __name__ == "__main__":
    main()
