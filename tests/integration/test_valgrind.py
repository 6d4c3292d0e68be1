"""One gateway load run under valgrind memcheck: every kind of request, concurrent, then a clean
shutdown with no memory error and no leak. Needs the plain (not sanitized) build, which
./miroir.sh test provides as MIROIR_PLAIN_BUILD."""
import os
import re
import shutil
import signal
import subprocess
import threading

import pytest

from conftest import HOST, Http, healthy, wait_until

PORT = 27792
INDEX = "valgrind"
PLAIN = os.environ.get("MIROIR_PLAIN_BUILD")


def requests_of_every_kind(gw, worker):
    yield gw.post(f"/indexes/{INDEX}/search", {"q": "item", "limit": 5, "offset": worker})
    yield gw.post(f"/indexes/{INDEX}/search", {"q": "", "filter": "group = 2", "facets": ["group"], "sort": ["n:desc"]})
    yield gw.post(f"/indexes/{INDEX}/search", {"q": "item", "page": 2, "hitsPerPage": 7, "showRankingScore": True})
    yield gw.post(f"/indexes/{INDEX}/search", {"q": "item", "distinct": "group", "limit": 3})
    yield gw.get(f"/indexes/{INDEX}/search", q="item", limit="3", attributesToRetrieve="id,n")
    yield gw.post("/multi-search", {"queries": [{"indexUid": INDEX, "q": "item"}, {"indexUid": INDEX, "q": "7"}]})
    yield gw.post("/multi-search", {"federation": {"limit": 5},
                                    "queries": [{"indexUid": INDEX, "q": "item"}, {"indexUid": INDEX, "q": "3"}]})
    yield gw.post(f"/indexes/{INDEX}/facet-search", {"facetName": "group", "facetQuery": "1"})
    yield gw.post(f"/indexes/{INDEX}/documents/fetch", {"filter": "group = 1", "limit": 5})
    yield gw.get(f"/indexes/{INDEX}/documents", limit="4", offset="2")
    yield gw.get(f"/indexes/{INDEX}/documents/{worker}")
    yield gw.post(f"/indexes/{INDEX}/documents", [{"id": 1000 + worker, "n": worker, "group": 9, "t": "new item"}])
    yield gw.get("/tasks", limit="3")
    yield gw.get(f"/indexes/{INDEX}/stats")
    yield gw.get("/stats")
    yield gw.get(f"/indexes/{INDEX}/settings")
    yield gw.get("/_miroir/topology")
    yield gw.get("/health", detail="true")
    yield gw.get("/metrics")
    yield gw.get("/keys")  # open cluster: missing_master_key
    yield gw.req("POST", f"/indexes/{INDEX}/search", raw=b"{not json")
    yield gw.post("/indexes/nope/search", {"q": ""})
    yield gw.post(f"/indexes/{INDEX}/search", {"limit": -3})
    yield gw.post(f"/indexes/{INDEX}/documents", [{"no_id": 1}])


# ./miroir.sh test always provides both; only a bare pytest run outside CI may lack them
@pytest.mark.skipif((not PLAIN or not shutil.which("valgrind")) and not os.environ.get("CI"),
                    reason="needs MIROIR_PLAIN_BUILD and valgrind")
def test_gateway_load_under_memcheck(cluster):
    status, task = cluster["gateway"].post(f"/indexes/{INDEX}/documents",
                                           [{"id": i, "n": i, "group": i % 5, "t": f"item {i}"} for i in range(200)])
    assert cluster["gateway"].wait_task(task["taskUid"])["status"] == "succeeded"
    status, task = cluster["gateway"].req("PATCH", f"/indexes/{INDEX}/settings",
                                          {"filterableAttributes": ["group"], "sortableAttributes": ["n"]})
    assert cluster["gateway"].wait_task(task["taskUid"])["status"] == "succeeded"

    report = os.path.join(cluster["state"], "logs", "valgrind-gateway.txt")
    env = dict(cluster["env"], MIROIR_CONFIG=os.path.join(cluster["state"], "miroir.conf"),
               MIROIR_GATEWAY_LISTEN=f"{HOST}:{PORT}")
    stderr = open(os.path.join(cluster["state"], "logs", "valgrind-gateway.log"), "wb")
    proc = subprocess.Popen(["valgrind", "--tool=memcheck", "--leak-check=full", "--show-leak-kinds=definite,indirect",
                             "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99", "--num-callers=30",
                             f"--log-file={report}", os.path.join(PLAIN, "gateway", "miroir-gateway")],
                            env=env, stdout=stderr, stderr=stderr)
    gw = Http(f"http://{HOST}:{PORT}")
    answered = []
    try:
        wait_until("the gateway under valgrind", lambda: healthy(gw), 120)

        def worker(k):
            client = Http(gw.base)
            for _ in range(4):
                for status, _body in requests_of_every_kind(client, k):
                    answered.append(status)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=120)
        stderr.close()
    text = open(report).read()
    assert len(answered) == 4 * 4 * 24 and all(s < 500 for s in answered), sorted(set(answered))
    errors = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    assert errors and errors.group(1) == "0", text[-6000:]
    for kind in ("definitely lost", "indirectly lost"):
        m = re.search(kind + r": ([\d,]+) bytes", text)
        assert not m or m.group(1) == "0", text[-6000:]
    assert rc == 0, f"exit {rc}; valgrind report in {report}"

