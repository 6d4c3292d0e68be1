"""What official clients rely on beyond each route's answer (issue #13): bodies and answers in the
content codings they use, the experimental-features route their fixtures call, and documents and
tied hits in the order they were written, across shards. (Keys' timestamp form is in
tests/unit/test_auth.c.)"""
import gzip
import json
import zlib

import pytest
import requests

try:
    import brotli
except ImportError:  # requests decodes br only with it; the gateway then answers gzip
    brotli = None


@pytest.fixture
def fresh(cluster):
    """Makes indexes of one replica each, deleted after the test: the session's cluster is shared,
    and a shard of one replica turns its health red whenever a later test stops a node."""
    gw, made = cluster["gateway"], []

    def make(uid, shards=4):
        status, task = gw.post("/indexes", {"uid": uid, "primaryKey": "id", "shards": shards, "replicationFactor": 1})
        assert status == 202, task
        assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
        made.append(uid)

    yield make
    for uid in made:
        status, task = gw.req("DELETE", f"/indexes/{uid}")
        assert status == 202 and gw.wait_task(task["taskUid"])["status"] == "succeeded", task


def raw(gw, method, path, data=None, **headers):
    return requests.request(method, gw.base + path, data=data, headers=headers, timeout=60, stream=True)


def test_bodies_and_answers_in_each_coding(cluster, fresh):
    gw = cluster["gateway"]
    fresh("codings")
    docs = [{"id": i, "title": f"book {i}"} for i in range(30)]
    body = json.dumps(docs).encode()
    packed = {"gzip": gzip.compress(body), "deflate": zlib.compress(body)}
    if brotli:
        packed["br"] = brotli.compress(body)
    for coding, data in packed.items():
        r = raw(gw, "POST", "/indexes/codings/documents", data, **{"Content-Encoding": coding,
                                                                  "Content-Type": "application/json"})
        assert r.status_code == 202, (coding, r.text)
        assert gw.wait_task(r.json()["taskUid"])["status"] == "succeeded"
    assert gw.get("/indexes/codings/stats")[1]["numberOfDocuments"] == 30
    # a body that isn't what it says, a coding nobody speaks, and a bomb past the size limit
    r = raw(gw, "POST", "/indexes/codings/documents", b"not gzip", **{"Content-Encoding": "gzip",
                                                                      "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "malformed_payload", r.text
    r = raw(gw, "POST", "/indexes/codings/documents", body, **{"Content-Encoding": "zstd",
                                                               "Content-Type": "application/json"})
    assert r.status_code == 415 and r.json()["code"] == "invalid_content_type", r.text
    bomb = gzip.compress(b"[" + b" " * (120 << 20) + b"]")
    r = raw(gw, "POST", "/indexes/codings/documents", bomb, **{"Content-Encoding": "gzip",
                                                               "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large", r.text
    # every answer, however small, in the coding asked for (some clients decode without looking)
    for coding, unpack in (("gzip", gzip.decompress), ("deflate", zlib.decompress)):
        r = raw(gw, "GET", "/indexes/codings/documents/3", **{"Accept-Encoding": coding})
        assert r.status_code == 200 and r.headers["Content-Encoding"] == coding
        assert json.loads(unpack(r.raw.read())) == {"id": 3, "title": "book 3"}
    r = raw(gw, "GET", "/health", **{"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in r.headers and r.json()["status"] == "available"


def test_experimental_features_keep_network_and_refuse_the_rest(cluster, fresh):
    gw = cluster["gateway"]
    status, features = gw.get("/experimental-features")
    assert status == 200 and set(features) >= {"metrics", "network", "chatCompletions", "vectorStoreSetting"}
    assert not any(features.values())
    status, features = gw.req("PATCH", "/experimental-features", {"network": True})
    assert status == 200 and features["network"] is True, features
    assert gw.get("/experimental-features")[1]["network"] is True  # kept, for every gateway
    status, err = gw.req("PATCH", "/experimental-features", {"metrics": True})
    assert status == 400 and err["code"] == "miroir_feature_unavailable", err
    status, err = gw.req("PATCH", "/experimental-features", {"bogus": True})
    assert status == 400 and err["code"] == "bad_request", err
    status, err = gw.req("PATCH", "/experimental-features", {"network": "yes"})
    assert status == 400 and err["code"] == "bad_request", err
    fresh("remote")
    status, err = gw.post("/multi-search", {"federation": {}, "queries": [
        {"indexUid": "remote", "q": "x", "federationOptions": {"remote": "ms-1"}}]})
    assert status == 400 and err["code"] == "miroir_feature_unavailable", err
    status, features = gw.req("PATCH", "/experimental-features", {"network": False})
    assert status == 200 and features["network"] is False


def test_documents_and_ties_come_in_write_order(cluster, fresh):
    """A node gives documents browsed without sort, and tied hits, in the order they were
    written; across shards the gateway gives the same, and never shows how it knows."""
    gw = cluster["gateway"]
    fresh("ordered", shards=4)
    ids = [17, 3, 42, 8, 25, 1, 30, 12, 5, 21]
    for first in range(0, len(ids), 4):  # several writes, each of several documents
        status, task = gw.post("/indexes/ordered/documents", [{"id": i, "kind": "book"} for i in ids[first:first + 4]])
        assert status == 202 and gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, page = gw.get("/indexes/ordered/documents", limit=100)
    assert [d["id"] for d in page["results"]] == ids, page
    assert all("_miroir_seq" not in d for d in page["results"])
    status, page = gw.get("/indexes/ordered/documents", offset=3, limit=4, fields="kind")
    assert page["results"] == [{"kind": "book"}] * 4 and page["total"] == 10, page
    status, page = gw.post("/indexes/ordered/documents/fetch", {"offset": 2, "limit": 5})
    assert [d["id"] for d in page["results"]] == ids[2:7], page
    status, hits = gw.post("/indexes/ordered/search", {"q": "book", "attributesToHighlight": ["*"]})
    assert [h["id"] for h in hits["hits"]] == ids, hits
    assert all("_miroir_seq" not in h and "_miroir_seq" not in h["_formatted"] for h in hits["hits"])
    status, hits = gw.post("/indexes/ordered/search", {"q": "", "attributesToRetrieve": ["id"], "limit": 5})
    assert hits["hits"] == [{"id": i} for i in ids[:5]], hits
    status, multi = gw.post("/multi-search", {"federation": {}, "queries": [{"indexUid": "ordered", "q": ""}]})
    assert [h["id"] for h in multi["hits"]] == ids, multi
    # the order's field shows nowhere
    assert "_miroir_seq" not in gw.get("/indexes/ordered/stats")[1]["fieldDistribution"]
    status, task = gw.req("PATCH", "/indexes/ordered/settings", {"displayedAttributes": ["id"]})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    assert gw.get("/indexes/ordered/settings/displayed-attributes")[1] == ["id"]
    status, hits = gw.post("/indexes/ordered/search", {"q": ""})
    assert hits["hits"] == [{"id": i} for i in ids], hits  # still in order with the field hidden


def test_sort_on_an_attribute_some_shards_lack(cluster, fresh):
    """Meilisearch refuses a documents sort on an attribute no document has; a shard whose
    documents all lack it must not make the whole answer fail when others have it."""
    gw = cluster["gateway"]
    fresh("sparse", shards=4)
    status, task = gw.req("PATCH", "/indexes/sparse/settings", {"sortableAttributes": ["year", "title"]})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    docs = [{"id": 1, "title": "c", "year": 2001}, {"id": 2, "title": "a"}, {"id": 3, "title": "b", "year": 1999}]
    status, task = gw.post("/indexes/sparse/documents", docs)
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, page = gw.post("/indexes/sparse/documents/fetch", {"sort": ["year:asc"]})
    assert status == 200, page
    assert [d["id"] for d in page["results"]] == [3, 1, 2], page  # the one without a year last
    status, page = gw.get("/indexes/sparse/documents", sort="year:desc,title:asc")
    assert [d["id"] for d in page["results"]] == [1, 3, 2], page
    status, err = gw.post("/indexes/sparse/documents/fetch", {"sort": ["nothing:asc"]})
    assert status == 400 and err["code"] == "invalid_document_sort", err
