"""Every bad input gets Meilisearch's error shape and status, and nothing reaches Kafka."""
import json

import pytest
from confluent_kafka import Consumer, TopicPartition

from conftest import MAX_BODY, SHARDS, node_wait_task, storage_of


def produced(cluster, index="packages"):
    """Records in the index topic, summed over its partitions."""
    c = Consumer({"bootstrap.servers": cluster["kafka"], "group.id": "miroir-test-watermarks"})
    try:
        topic = f"miroir.idx.{storage_of(cluster['gateway'], index)}"
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in range(SHARDS))
    finally:
        c.close()


def assert_error(answer, status, code):
    got_status, body = answer
    assert got_status == status, body
    assert body["code"] == code, body
    assert set(body) == {"message", "code", "type", "link"}
    assert body["link"] == f"https://docs.meilisearch.com/errors#{code}"
    assert body["message"]


CASES = [
    ("malformed json", dict(raw=b'[{"id": 1},', ctype="application/json"), 400, "malformed_payload"),
    ("malformed ndjson", dict(raw=b'{"id": 1}\n{"id": ', ctype="application/x-ndjson"), 400, "malformed_payload"),
    ("not objects", dict(raw=b'[1, 2]', ctype="application/json"), 400, "malformed_payload"),
    ("empty body", dict(raw=b'', ctype="application/json"), 400, "missing_payload"),
    ("reserved field", dict(raw=b'[{"id": 7, "_miroir_shard": 1}]', ctype="application/json"), 400,
     "miroir_reserved_field"),
    ("content type", dict(raw=b'[{"id": 1}]', ctype="text/plain"), 415, "invalid_content_type"),
]


@pytest.mark.parametrize("name,kw,status,code", CASES, ids=[c[0] for c in CASES])
def test_bad_documents_are_refused_and_nothing_is_produced(cluster, loaded, name, kw, status, code):
    before = produced(cluster)
    assert_error(cluster["gateway"].post("/indexes/packages/documents", **kw), status, code)
    assert produced(cluster) == before


# What a node only finds when it processes the documents: the write is enqueued and its task
# fails, with the node's error, and none of the documents is applied.
FAILING = {
    "missing primary key": ('[{"id": 1}, {"name": "x"}]', {}),
    "invalid id": ('[{"id": "no spaces allowed"}]', {}),
    "float id": ('[{"id": 1.5}]', {}),
    "another primary key": ('[{"ref": 1}]', {"primaryKey": "ref"}),
}


@pytest.mark.parametrize("name", list(FAILING))
def test_documents_a_node_would_fail_fail_their_task(cluster, loaded, baseline, name):
    body, params = FAILING[name]
    before = produced(cluster)
    answers = []
    for http, wait in ((cluster["gateway"], cluster["gateway"].wait_task),
                       (baseline, lambda uid: node_wait_task(baseline, uid))):
        status, task = http.req("POST", "/indexes/packages/documents", raw=body.encode(), ctype="application/json",
                                **params)
        assert status == 202, task
        answers.append(wait(task["taskUid"]))
    on_gateway, on_node = answers
    assert on_gateway["status"] == on_node["status"] == "failed", answers
    assert on_gateway["error"] == on_node["error"]
    assert on_gateway["details"] == on_node["details"] == {"receivedDocuments": body.count("{"), "indexedDocuments": 0}
    assert produced(cluster) == before


def test_body_over_the_limit(cluster, loaded):
    before = produced(cluster)
    big = b"[" + b",".join(b'{"id": %d, "pad": "%s"}' % (i, b"x" * 1000) for i in range(MAX_BODY // 1000 + 10)) + b"]"
    assert len(big) > MAX_BODY
    assert_error(cluster["gateway"].post("/indexes/packages/documents", raw=big), 413, "payload_too_large")
    assert produced(cluster) == before


def test_unknown_index(cluster, loaded):
    gw = cluster["gateway"]
    assert_error(gw.post("/indexes/nope/search", {"q": "x"}), 404, "index_not_found")
    assert_error(gw.get("/indexes/nope/search", q="x"), 404, "index_not_found")
    assert_error(gw.get("/indexes/nope/documents/1"), 404, "index_not_found")
    # a write to a missing index is a task that fails, as on one node
    status, task = gw.req("DELETE", "/indexes/nope/documents/1")
    assert status == 202, task
    done = gw.wait_task(task["taskUid"])
    assert (done["status"], done["error"]["code"]) == ("failed", "index_not_found"), done
    assert_error(gw.get("/indexes/nope"), 404, "index_not_found")
    assert_error(gw.get("/indexes/nope/settings"), 404, "index_not_found")


def test_unknown_route_and_method(cluster, baseline):
    """As a node answers them: an empty 404, an empty 405 with the methods allowed (SDKs then
    report the status line); Miroir's own routes say what went wrong."""
    gw = cluster["gateway"]
    for http in (gw, baseline):
        for method, path, status in (("GET", "/no/such/route", 404), ("POST", "/indexes/indexes/x/documents/fetch", 404),
                                     ("PUT", "/indexes", 405)):
            r = http.s.request(method, http.base + path, timeout=10)
            assert (r.status_code, r.content) == (status, b""), (http.base, method, path, r.text)
            if status == 405:
                assert set(r.headers["Allow"].split(", ")) == {"GET", "POST"}, r.headers
    assert_error(gw.get("/_miroir/no/such/route"), 404, "not_found")


def test_unknown_task_and_document(cluster, loaded):
    gw = cluster["gateway"]
    assert_error(gw.get("/tasks/987654321"), 404, "task_not_found")
    assert_error(gw.get("/tasks/abc"), 400, "invalid_task_uids")
    assert_error(gw.get("/indexes/packages/documents/999999999999"), 404, "document_not_found")
    # an invalid id names no document: its deletion deletes nothing, as on a node
    status, task = gw.req("DELETE", "/indexes/packages/documents/bad%20id")
    assert status == 202, task
    done = gw.wait_task(task["taskUid"])
    assert done["status"] == "succeeded" and done["details"]["deletedDocuments"] == 0, done


def test_bad_search_parameters(cluster, loaded):
    gw = cluster["gateway"]
    assert_error(gw.post("/indexes/packages/search", {"limit": "x"}), 400, "invalid_search_limit")
    assert_error(gw.post("/indexes/packages/search", {"offset": -3}), 400, "invalid_search_offset")
    assert_error(gw.post("/indexes/packages/search", {"page": -1}), 400, "invalid_search_page")
    assert_error(gw.post("/indexes/packages/search", {"hitsPerPage": "x"}), 400, "invalid_search_hits_per_page")
    assert_error(gw.get("/indexes/packages/search", limit="x"), 400, "invalid_search_limit")
    assert_error(gw.get("/indexes/packages/search", showRankingScore="maybe"), 400, "invalid_search_show_ranking_score")
    # validated by the nodes and passed through unchanged
    assert_error(gw.post("/indexes/packages/search", {"q": 1}), 400, "invalid_search_q")
    assert_error(gw.post("/indexes/packages/search", {"filter": "summary = x"}), 400, "invalid_search_filter")
    assert_error(gw.post("/indexes/packages/search", {"facets": ["summary"]}), 400, "invalid_search_facets")
    assert_error(gw.post("/indexes/packages/search", {"nonsense": 1}), 400, "bad_request")
    assert_error(gw.post("/indexes/packages/search", raw=b"{", ctype="application/json"), 400, "malformed_payload")


def test_bad_index_creation(cluster, loaded):
    gw = cluster["gateway"]
    assert_error(gw.post("/indexes", {"uid": "bad uid"}), 400, "invalid_index_uid")
    assert_error(gw.post("/indexes", {"primaryKey": "id"}), 400, "missing_index_uid")
    assert_error(gw.post("/indexes", {"uid": "x1", "shards": 0}), 400, "miroir_invalid_shards")
    assert_error(gw.post("/indexes", {"uid": "x1", "replicationFactor": 4}), 400, "miroir_invalid_replication_factor")
    assert_error(gw.post("/indexes", {"uid": "x1", "colour": "red"}), 400, "bad_request")
    # an existing index: enqueued, then failed, as Meilisearch does it
    status, task = gw.post("/indexes", {"uid": "packages"})
    assert status == 202
    done = gw.wait_task(task["taskUid"])
    assert done["status"] == "failed" and done["error"]["code"] == "index_already_exists"


def test_bad_settings_are_checked_like_a_node(cluster, loaded):
    gw = cluster["gateway"]
    assert_error(gw.req("PATCH", "/indexes/packages/settings", {"filterableAttributes": "registry"}), 400,
                 "invalid_settings_filterable_attributes")
    assert_error(gw.req("PATCH", "/indexes/packages/settings", {"unknownSetting": 1}), 400, "bad_request")
