"""Vector, semantic and hybrid searches, and similar documents, (a userProvided embedder, so no model is fetched) against
one Meilisearch node holding the whole index and against the gateway, over 4 shards: the same
hits in the same order, the same semanticHitCount, the same queryVector. A hybrid search mixes
keyword and semantic hits by score times each side's weight, so a merge by bare score would put
them in another order whenever semanticRatio is not 0.5."""
import math

import pytest

from conftest import node_wait_task, shard_of

INDEX = "vectors"
# As many dimensions as documents: each of the engine's trees is then one leaf, so its nearest
# neighbours are exact, on the node as on every shard, and the answers can be compared.
DIMENSIONS = 256
SETTINGS = {"embedders": {"default": {"source": "userProvided", "dimensions": DIMENSIONS}},
            "filterableAttributes": ["group"]}
WORDS = ["amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "harbor", "island", "juniper"]
COUNT = 200


def vector_of(i, direction=None):
    """Four clusters around +x, -x, +y and -y, each vector a little off its axis, so that a query
    along x scores one cluster near 1, two near 0.5 and one near 0."""
    v = [0.02 * math.sin((i + 3) * (k + 1) * 0.61) for k in range(DIMENSIONS)]
    axis = i % 4 if direction is None else direction
    v[axis // 2] += 1.0 if axis % 2 == 0 else -1.0
    return [round(x, 5) for x in v]


DOCS = [{"id": i, "title": f"{WORDS[i % 10]} {WORDS[(i * 7) % 10]} {WORDS[(i // 10) % 10]} note {i}",
         "group": i % 3, "_vectors": {"default": vector_of(i)}} for i in range(COUNT)]


@pytest.fixture(scope="module")
def vector_index(cluster, baseline):
    gw = cluster["gateway"]
    status, task = gw.post("/indexes", {"uid": INDEX, "primaryKey": "id", "shards": 4, "replicationFactor": 1})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, task = gw.req("PATCH", f"/indexes/{INDEX}/settings", SETTINGS)
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded", task
    status, task = gw.post(f"/indexes/{INDEX}/documents", DOCS)
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, t = baseline.post("/indexes", {"uid": INDEX, "primaryKey": "id"})
    node_wait_task(baseline, t["taskUid"])
    status, t = baseline.req("PATCH", f"/indexes/{INDEX}/settings", SETTINGS)
    assert node_wait_task(baseline, t["taskUid"])["status"] == "succeeded"
    status, t = baseline.post(f"/indexes/{INDEX}/documents", DOCS)
    assert node_wait_task(baseline, t["taskUid"])["status"] == "succeeded"
    return gw


def shown(answer):
    """What must agree: the hits (ids, scores), and everything but the engine's time."""
    out = {k: v for k, v in answer.items() if k not in ("processingTimeMs", "hits")}
    out["hits"] = [(h["id"], round(h.get("_rankingScore", 0), 9)) for h in answer["hits"]]
    return out


ALONG_X = vector_of(1001, direction=0)
QUERIES = {
    "semantic, vector given": {"vector": ALONG_X, "hybrid": {"semanticRatio": 1.0, "embedder": "default"},
                               "limit": 12, "showRankingScore": True},
    "semantic, no query": {"vector": vector_of(7, direction=3), "hybrid": {"embedder": "default"}, "offset": 3,
                           "limit": 7},
    "semantic, vectors shown": {"vector": ALONG_X, "hybrid": {"semanticRatio": 1.0, "embedder": "default"},
                                "retrieveVectors": True, "limit": 5},
    # a rare word: the keyword side is not good enough, so the semantic side fills the page
    "hybrid even": {"q": "137", "vector": ALONG_X, "hybrid": {"embedder": "default"}, "limit": 10,
                    "showRankingScore": True},
    "hybrid leaning keyword": {"q": "42", "vector": ALONG_X, "hybrid": {"semanticRatio": 0.2, "embedder": "default"},
                               "limit": 10, "showRankingScore": True},
    # keyword hits (score near 1, weighted 0.2) rank below the semantic hits of the +x and +-y
    # clusters and above those of the -x one: by bare score they would come first
    "hybrid leaning semantic": {"q": "harbor fjord", "vector": ALONG_X,
                                "hybrid": {"semanticRatio": 0.8, "embedder": "default"}, "limit": 170,
                                "showRankingScore": True},
    "hybrid paged": {"q": "juniper amber", "vector": ALONG_X,
                     "hybrid": {"semanticRatio": 0.7, "embedder": "default"}, "hitsPerPage": 40, "page": 4,
                     "showRankingScore": True},
    "hybrid with details": {"q": "grove 1", "vector": ALONG_X, "hybrid": {"semanticRatio": 0.9, "embedder": "default"},
                            "offset": 140, "limit": 30, "showRankingScoreDetails": True},
    "keyword, ratio 0": {"q": "harbor", "vector": ALONG_X, "hybrid": {"semanticRatio": 0.0, "embedder": "default"},
                         "limit": 10},
}


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_vector_searches_answer_as_one_node(vector_index, baseline, name):
    body = QUERIES[name]
    status, mine = vector_index.post(f"/indexes/{INDEX}/search", body)
    assert status == 200, mine
    status, single = baseline.post(f"/indexes/{INDEX}/search", body)
    assert status == 200, single
    assert shown(mine) == shown(single)
    if "showRankingScoreDetails" in body:
        assert [h["_rankingScoreDetails"] for h in mine["hits"]] == [h["_rankingScoreDetails"] for h in single["hits"]]
    elif "_rankingScoreDetails" in str(mine):
        pytest.fail("score details asked for the merge were left in the answer")


def test_a_hybrid_search_mixes_both_sides(vector_index, baseline):
    """The queries above are worth something only if a hybrid page holds hits of both sides."""
    for name in ("hybrid even", "hybrid leaning keyword", "hybrid leaning semantic", "hybrid paged",
                 "hybrid with details"):
        status, single = baseline.post(f"/indexes/{INDEX}/search", QUERIES[name])
        assert 0 < single["semanticHitCount"] < len(single["hits"]), (name, single["semanticHitCount"])


def test_a_get_search_takes_its_vector_and_hybrid_parameters(vector_index, baseline):
    vector = ",".join(str(x) for x in ALONG_X)
    params = {"q": "42", "vector": vector, "hybridEmbedder": "default", "hybridSemanticRatio": "0.2",
              "limit": "10", "showRankingScore": "true"}
    status, mine = vector_index.get(f"/indexes/{INDEX}/search", **params)
    assert status == 200, mine
    status, single = baseline.get(f"/indexes/{INDEX}/search", **params)
    assert shown(mine) == shown(single)
    assert shown(mine) == shown(vector_index.post(f"/indexes/{INDEX}/search", QUERIES["hybrid leaning keyword"])[1])
    for bad in ({"hybridSemanticRatio": "0.5"}, {"vector": "0.1,0.2"},
                {"hybridEmbedder": "default", "hybridSemanticRatio": "2"},
                {"hybridEmbedder": "default", "vector": "0.1,x"}):
        status, err = vector_index.get(f"/indexes/{INDEX}/search", q="amber", **bad)
        node_status, node_err = baseline.get(f"/indexes/{INDEX}/search", q="amber", **bad)
        assert (status, err["code"], err["type"]) == (node_status, node_err["code"], node_err["type"]), (bad, err, node_err)


SIMILAR = {
    "plain": {"id": 10, "embedder": "default"},
    "paged, scored": {"id": "37", "embedder": "default", "offset": 9, "limit": 30, "showRankingScore": True},
    "filtered, details": {"id": 4, "embedder": "default", "filter": "group = 1", "limit": 15,
                          "showRankingScoreDetails": True},
    "fields, vectors": {"id": 121, "embedder": "default", "limit": 4, "attributesToRetrieve": ["title", "id"],
                        "retrieveVectors": True},
    "threshold": {"id": 50, "embedder": "default", "limit": 100, "rankingScoreThreshold": 0.6,
                  "showRankingScore": True},
}


@pytest.mark.parametrize("name", sorted(SIMILAR))
def test_similar_documents_answer_as_one_node(vector_index, baseline, name):
    """The document lives on one shard; its neighbours on all of them."""
    body = SIMILAR[name]
    status, mine = vector_index.post(f"/indexes/{INDEX}/similar", body)
    assert status == 200, mine
    status, single = baseline.post(f"/indexes/{INDEX}/similar", body)
    assert status == 200, single
    assert shown(mine) == shown(single)
    assert [h for h in mine["hits"]] == [h for h in single["hits"]]  # fields, details, vectors
    if len(mine["hits"]) >= 12:  # the neighbours come from every shard
        assert {shard_of(str(h["id"]), 4) for h in mine["hits"]} == {0, 1, 2, 3}


def test_similar_documents_by_get_and_refusals(vector_index, baseline):
    params = {"id": "37", "embedder": "default", "offset": "2", "limit": "8", "filter": "group = 2",
              "showRankingScore": "true", "attributesToRetrieve": "id,title"}
    status, mine = vector_index.get(f"/indexes/{INDEX}/similar", **params)
    assert status == 200, mine
    assert mine["hits"] == baseline.get(f"/indexes/{INDEX}/similar", **params)[1]["hits"]
    for method, bad in (("POST", {"id": 9999, "embedder": "default"}),  # no such document
                        ("POST", {"id": 3}),  # no embedder
                        ("POST", {"id": 3, "embedder": "nope"}),
                        ("POST", {"embedder": "default"}),
                        ("POST", {"id": 3, "embedder": "default", "q": "amber"}),  # not a similar parameter
                        ("POST", {"id": 3, "embedder": "default", "limit": -1}),
                        ("POST", {"id": 3, "embedder": "default", "filter": "title = x"}),  # not filterable
                        ("GET", {"id": "3", "embedder": "default", "limit": "x"})):
        if method == "POST":
            status, err = vector_index.post(f"/indexes/{INDEX}/similar", bad)
            node_status, node_err = baseline.post(f"/indexes/{INDEX}/similar", bad)
        else:
            status, err = vector_index.get(f"/indexes/{INDEX}/similar", **bad)
            node_status, node_err = baseline.get(f"/indexes/{INDEX}/similar", **bad)
        assert node_status >= 400, (bad, node_err)
        assert (status, err["code"], err["type"]) == (node_status, node_err["code"], node_err["type"]), (bad, err, node_err)
        assert err["message"] == node_err["message"], (bad, err, node_err)


def test_multi_search_counts_semantic_hits(vector_index, baseline):
    """Each query of a multi-search answers as it would alone; a federated one counts the
    semantic hits of its merged page, as a node does when one of its queries is semantic."""
    queries = [dict(QUERIES["hybrid even"], indexUid=INDEX), {"indexUid": INDEX, "q": "harbor", "limit": 5}]
    for body in ({"queries": queries},
                 {"federation": {"limit": 25}, "queries": [{k: v for k, v in q.items() if k != "limit"}
                                                           for q in queries]}):
        status, mine = vector_index.post("/multi-search", body)
        assert status == 200, mine
        status, single = baseline.post("/multi-search", body)
        assert status == 200, single
        if "federation" in body:
            assert [h["id"] for h in mine["hits"]] == [h["id"] for h in single["hits"]]
            assert mine["semanticHitCount"] == single["semanticHitCount"] > 0
        else:
            assert [shown(r) for r in mine["results"]] == [shown(r) for r in single["results"]]
    body = {"federation": {}, "queries": [{"indexUid": INDEX, "q": "harbor"}]}
    assert "semanticHitCount" not in vector_index.post("/multi-search", body)[1]  # no semantic query
