"""The read path under faults: a search answers from the shards it can reach only when the client
asks for it (allowPartialResults, and the answer names what it lacks); a shard request late on a
stalled node is hedged on another replica; a replica that turned slow is asked last. Second
gateways on the suite's cluster run without hedging, to show the difference."""
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import ROOT, Http, extra_gateway, pid_of, placement_of, shard_of, wait_until


def make_index(gw, uid, shards, rf, count=400):
    status, task = gw.post("/indexes", {"uid": uid, "primaryKey": "id", "shards": shards, "replicationFactor": rf})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    words = ["amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "harbor"]
    docs = [{"id": i, "title": f"{words[i % 8]} {words[(i // 8) % 8]} item {i}"} for i in range(count)]
    status, task = gw.post(f"/indexes/{uid}/documents", docs)
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"


def node_pid(cluster, node):
    return pid_of(cluster, f"node{node[1:]}")


def test_partial_results_only_when_asked(cluster):
    gw = cluster["gateway"]
    make_index(gw, "partial", 4, 1)
    placement = placement_of(gw, "partial")
    victim = placement[0]["replicas"][0]["node"]
    lost = sorted(s["shard"] for s in placement if s["replicas"][0]["node"] == victim)
    os.kill(node_pid(cluster, victim), signal.SIGKILL)
    try:
        wait_until(f"{victim} to read as down", lambda: not next(
            n for n in gw.get("/_miroir/nodes")[1]["results"] if n["id"] == victim)["up"], 30)
        status, err = gw.post("/indexes/partial/search", {"q": "", "limit": 400})
        assert status == 503 and err["code"] == "miroir_shard_unavailable", err
        status, found = gw.post("/indexes/partial/search", {"q": "", "limit": 400, "allowPartialResults": True})
        assert status == 200, found
        assert found["missingShards"] == lost, found
        got = {h["id"] for h in found["hits"]}
        assert got == {i for i in range(400) if shard_of(str(i), 4) not in lost}
        status, found = gw.get("/indexes/partial/search", q="amber", allowPartialResults="true")
        assert status == 200 and found["missingShards"] == lost
        status, found = gw.post("/indexes/partial/search", {"q": "amber", "allowPartialResults": False})
        assert status == 503
        status, err = gw.post("/indexes/partial/search", {"q": "amber", "allowPartialResults": "yes"})
        assert status == 400 and err["code"] == "invalid_search_allow_partial_results", err
    finally:
        subprocess.run([os.path.join(ROOT, "miroir.sh"), "start"], env=cluster["env"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    wait_until("the node back", lambda: gw.post("/indexes/partial/search", {"q": ""})[0] == 200, 60)
    status, found = gw.post("/indexes/partial/search", {"q": "", "allowPartialResults": True, "limit": 1})
    assert status == 200 and "missingShards" not in found


def metric_total(gw, name):
    for line in gw.s.get(gw.base + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def same_answer(gw, other, path, body):
    """Both gateways answer body alike (the engine's time aside); returns the first's answer."""
    a, b = gw.post(path, body), other.post(path, body)
    assert a[0] == b[0] == 200, (a, b)
    a[1].pop("processingTimeMs")
    b[1].pop("processingTimeMs")
    assert a[1] == b[1], body
    return a[1]


def timed_searches(gw, queries):
    """Each query at once, on its own connection; their statuses and latencies in seconds."""
    out = [None] * len(queries)

    def one(k):
        c = Http(gw.base, gw.s.headers.get("Authorization", "").replace("Bearer ", "") or None)
        started = time.monotonic()
        status, _ = c.post("/indexes/hedged/search", {"q": queries[k]})
        out[k] = (status, time.monotonic() - started)
    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(queries))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


@pytest.fixture(scope="module")
def hedged(cluster):
    """Index `hedged`: two shards, each on two nodes."""
    make_index(cluster["gateway"], "hedged", 2, 2)
    return "hedged"


def test_a_late_shard_request_is_hedged(cluster, hedged):
    """A node stops answering (SIGSTOP): the requests already bound for it are hedged on the
    other replica and answered within a small multiple of a normal answer; without hedging they
    wait for the node until the health check or the upstream timeout gives up on it."""
    gw = cluster["gateway"]
    try:
        with extra_gateway(cluster, 27792, "unhedged", hedge_percent=0) as plain:
            hedged_check(cluster, gw, plain)
    finally:
        wait_until("the node back", lambda: gw.get("/health")[1]["cluster"] == "green", 60)


def hedged_check(cluster, gw, plain):
    """The hedged searches of test_a_late_shard_request_is_hedged, with and without hedging."""
    words = ["amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "harbor"]
    for k in range(300):  # latencies learned, hedges earned
        for g in (gw, plain):
            assert g.post("/indexes/hedged/search", {"q": f"{words[k % 8]} {k}"})[0] == 200
    hedges = metric_total(gw, "miroir_hedged_requests_total")
    victim = placement_of(gw, "hedged")[0]["replicas"][0]["node"]
    pid = node_pid(cluster, victim)
    os.kill(pid, signal.SIGSTOP)
    try:  # both at once: the health check marks the node down within a second or two
        queries = [f"{words[k % 8]} item {k}" for k in range(12)]  # within the budget's burst
        runs = {}
        both = [threading.Thread(target=lambda g=g, name=name: runs.__setitem__(name, timed_searches(g, queries)))
                for name, g in (("hedged", gw), ("plain", plain))]
        for t in both:
            t.start()
        for t in both:
            t.join(60)
        hedged_runs, plain_runs = runs["hedged"], runs["plain"]
    finally:
        os.kill(pid, signal.SIGCONT)
    worst_hedged = max(t for _, t in hedged_runs)
    worst_plain = max(t for _, t in plain_runs)
    won = metric_total(gw, "miroir_hedges_won_total")
    print(f"\nwith {victim} stopped: slowest search {worst_hedged * 1000:.0f} ms hedged, "
          f"{worst_plain * 1000:.0f} ms without; hedges {metric_total(gw, 'miroir_hedged_requests_total') - hedges:.0f}, "
          f"won {won:.0f}")
    assert all(s == 200 for s, _ in hedged_runs + plain_runs)
    assert metric_total(gw, "miroir_hedged_requests_total") > hedges and won > 0
    assert worst_hedged < 0.8, hedged_runs
    assert worst_plain > 0.8, plain_runs  # what hedging saved
    shard_requests = metric_total(gw, "miroir_shard_requests_total")
    assert metric_total(gw, "miroir_hedged_requests_total") <= 0.05 * shard_requests + 20  # the budget


def shard_request_counts(gw):
    counts = {}
    for line in gw.s.get(gw.base + "/metrics", timeout=10).text.splitlines():
        if line.startswith("miroir_upstream_duration_seconds_count{"):
            node = line.split('node="')[1].split('"')[0]
            counts[node] = float(line.split()[-1])
    return counts


def test_a_slow_replica_is_asked_last(cluster, hedged):
    """A node made slow (stopped and continued in turns) gets far fewer of the shard requests it
    used to: the gateway's latency estimate sends its replicas after the fast ones."""
    with extra_gateway(cluster, 27793, "adaptive", hedge_percent=0) as plain:
        victim = placement_of(plain, "hedged")[0]["replicas"][0]["node"]
        pid = node_pid(cluster, victim)

        def share(seconds):
            before = shard_request_counts(plain)
            end, k = time.monotonic() + seconds, 0
            while time.monotonic() < end:
                plain.post("/indexes/hedged/search", {"q": f"cedar {k}"})
                k += 1
            after = shard_request_counts(plain)
            total = sum(after[n] - before.get(n, 0) for n in after)
            return (after.get(victim, 0) - before.get(victim, 0)) / total
        share(2)  # the node was stopped by the test before: its backlog drains, the estimate learns it fast
        normal = share(4)
        stop = threading.Event()

        def duty_cycle():
            while not stop.is_set():
                os.kill(pid, signal.SIGSTOP)  # two thirds of the time: ~20 ms more on average
                time.sleep(0.06)
                os.kill(pid, signal.SIGCONT)
                time.sleep(0.03)
        cycler = threading.Thread(target=duty_cycle)
        cycler.start()
        try:
            share(2)  # the estimate learns
            slow = share(6)
        finally:
            stop.set()
            cycler.join()
            os.kill(pid, signal.SIGCONT)
        print(f"\n{victim}'s share of shard requests: {normal:.2f} when fast, {slow:.2f} when slow")
        assert normal > 0.15 and slow < normal / 2


def test_a_nodes_shards_travel_in_one_request(cluster):
    """Six shards at RF=1 on three nodes: every node holds two, and each search sends each such
    node one /multi-search carrying both, answering as the same search sent shard by shard. A
    search one shard refuses gets the node's own words for a single search (not the multi-search's
    ``Inside `.queries[i]` ``), and a body naming a field only a multi-search query may hold is
    refused as a single search refuses it."""
    gw = cluster["gateway"]
    make_index(gw, "batched", 6, 1)
    held = {}
    for s in placement_of(gw, "batched"):
        held[s["replicas"][0]["node"]] = held.get(s["replicas"][0]["node"], 0) + 1
    batched_nodes = sum(1 for n in held.values() if n > 1)
    assert batched_nodes > 0, held
    bodies = [{"q": "cedar"}, {"q": "amber birch", "limit": 7, "offset": 3}, {"q": "", "page": 2, "hitsPerPage": 9},
              {"q": "grove", "attributesToHighlight": ["title"], "showRankingScore": True},
              {"q": "harbor item", "attributesToRetrieve": ["title"], "cropLength": 3, "attributesToCrop": ["title"]}]
    with extra_gateway(cluster, 27795, "per-shard", batch_shard_searches=0) as apart:
        batches, requests = metric_total(gw, "miroir_search_batches_total"), metric_total(gw, "miroir_shard_requests_total")
        for body in bodies:
            same_answer(gw, apart, "/indexes/batched/search", body)
        assert metric_total(gw, "miroir_search_batches_total") - batches == len(bodies) * batched_nodes
        assert metric_total(gw, "miroir_shard_requests_total") - requests >= len(bodies) * 6
        for body in ({"q": "cedar", "filter": "title = x"}, {"q": "cedar", "indexUid": "batched"},
                     {"q": "cedar", "federationOptions": {"weight": 2}}):
            a, b = gw.post("/indexes/batched/search", body), apart.post("/indexes/batched/search", body)
            print(f"\n{body} -> {a[0]} {a[1].get('code')}: {a[1].get('message')}")
            assert a[0] == b[0] == 400 and a[1] == b[1], (a, b)
            assert "queries" not in a[1]["message"]
    gw.req("DELETE", "/indexes/batched")


def test_a_shard_holding_the_whole_page_is_asked_for_all_of_it(cluster):
    """Each shard is first asked for its likely share of the page (11 of 20 hits at S=4); a shard
    whose share ran out inside the page is asked again for the whole window. Here every hit of
    the query is on shard 0, so the first answer holds 11 and the page needs 20: the answers must
    equal those of a gateway that asks every shard for the whole window, alone and as the queries
    of a /multi-search, and the retry shows in /metrics. Queries whose hits are spread need no
    retry."""
    gw = cluster["gateway"]
    make_index(gw, "crowded", 4, 1)
    ids = [i for i in range(10_000, 20_000) if shard_of(str(i), 4) == 0][:30]
    docs = [{"id": i, "title": f"zebracorn {'stripes ' * (k % 5)}number {k}"} for k, i in enumerate(ids)]
    status, task = gw.post("/indexes/crowded/documents", docs)
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    crowded = [{"q": "zebracorn", "showRankingScore": True}, {"q": "zebracorn", "offset": 7, "limit": 12},
               {"q": "zebracorn stripes", "hitsPerPage": 8, "page": 2}, {"q": "zebracorn", "limit": 25}]
    spread = [{"q": "amber"}, {"q": "cedar item", "limit": 30, "offset": 4}, {"q": "", "page": 3, "hitsPerPage": 7}]
    with extra_gateway(cluster, 27797, "whole-windows", narrow_shard_windows=0) as whole:
        before = metric_total(gw, "miroir_search_window_retries_total")
        for body in crowded:
            answer = same_answer(gw, whole, "/indexes/crowded/search", body)
            assert len(answer["hits"]) == min(body.get("limit", body.get("hitsPerPage", 20)), 30 - body.get("offset", 0) -
                                             (body.get("page", 1) - 1) * body.get("hitsPerPage", 0)), body
        # the same searches as the queries of one /multi-search: each is narrowed and widened alike
        multi = {"queries": [dict(body, indexUid="crowded") for body in crowded]}
        a, b = gw.post("/multi-search", multi), whole.post("/multi-search", multi)
        assert a[0] == b[0] == 200, (a, b)
        for one, other in zip(a[1]["results"], b[1]["results"]):
            one.pop("processingTimeMs")
            other.pop("processingTimeMs")
            assert one == other
        retried = metric_total(gw, "miroir_search_window_retries_total") - before
        assert retried == 2 * len(crowded), retried  # shard 0, once per search
        for body in spread:
            same_answer(gw, whole, "/indexes/crowded/search", body)
        assert metric_total(gw, "miroir_search_window_retries_total") - before == retried
    gw.req("DELETE", "/indexes/crowded")
