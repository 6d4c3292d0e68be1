"""The vertical slice on real processes: placement, search equal to a single node, facets,
updates and deletes, stable paging, and an unchanged official SDK."""
import collections

import meilisearch
import pytest

from conftest import GATEWAY_PORT, HOST, RF, SHARDS, shard_of, storage_of, wait_until

# Real words from the corpus, a few misspelled, some multi-word.
QUERIES = ["react", "router", "http client", "json parser", "pytest", "django", "flask extension", "webpack plugin",
           "eslint config", "typescript", "aws sdk", "kubernetes", "machine learning", "tensorflow", "image",
           "logger", "cli tool", "markdown", "vue component", "database", "reqeusts", "djnago", "pyhton",
           "graphql", "redis", "testing utilities", "sqlalchemy", "babel preset", "async", "crypto"]


def top(answer):
    return [(h["id"], round(h["_rankingScore"], 9)) for h in answer["hits"]]


def same_ranking(a, b):
    """Equal score sequences, and equal ids except among the hits tied with the last score
    (a tie at the cut may keep different documents: replicas break ties by insertion history)."""
    if [s for _, s in a] != [s for _, s in b]:
        return False
    if not a:
        return True
    cut = a[-1][1]
    return {i for i, s in a if s != cut} == {i for i, s in b if s != cut}


def test_every_document_is_on_exactly_rf_nodes_in_its_shard(cluster, loaded):
    status, topo = cluster["gateway"].get("/_miroir/topology")
    assert status == 200
    placement = {s["shard"]: sorted(r["node"] for r in s["replicas"])
                 for s in next(i for i in topo["indexes"] if i["uid"] == "packages")["placement"]}
    assert all(len(nodes) == RF for nodes in placement.values())
    holders = collections.defaultdict(list)
    storage = storage_of(cluster["gateway"], "packages")
    for name, node in cluster["nodes"].items():
        for shard in range(SHARDS):
            status, page = node.get(f"/indexes/{storage}__s{shard}/documents", limit=20000, fields="id")
            if status == 404:
                assert name not in placement[shard]
                continue
            assert status == 200, page
            assert name in placement[shard], f"{name} holds shard {shard} but is not placed there"
            for doc in page["results"]:
                assert shard_of(doc["id"]) == shard, f"document {doc['id']} is in the wrong shard"
                holders[doc["id"]].append(name)
    assert set(holders) == set(loaded["by_id"])
    for doc_id, nodes in holders.items():
        assert sorted(nodes) == placement[shard_of(doc_id)]


def test_search_matches_a_single_node(cluster, loaded, baseline):
    gw = cluster["gateway"]
    agree, differ = 0, []
    for q in QUERIES:
        body = {"q": q, "limit": 20, "showRankingScore": True, "attributesToRetrieve": ["id"]}
        status, mine = gw.post("/indexes/packages/search", body)
        assert status == 200, mine
        status, single = baseline.post("/indexes/packages/search", body)
        assert status == 200
        if same_ranking(top(mine), top(single)):
            agree += 1
        else:
            differ.append(q)
    print(f"\nsearch: {agree}/{len(QUERIES)} queries rank like one node; differ: {differ}")
    # Each shard has its own word dictionary, so typo and prefix derivations can differ from one
    # big index (see docs/search.md). That is a property of sharding, not of the merge, which
    # test_search_equals_the_ideal_merge_of_its_shards checks exactly.
    assert agree >= 0.9 * len(QUERIES)


def test_search_equals_the_ideal_merge_of_its_shards(cluster, loaded):
    gw, nodes = cluster["gateway"], cluster["nodes"]
    status, topo = gw.get("/_miroir/topology")
    placement = {s["shard"]: [r["node"] for r in s["replicas"]]
                 for s in next(i for i in topo["indexes"] if i["uid"] == "packages")["placement"]}
    for q in QUERIES:
        body = {"q": q, "limit": 20, "offset": 5, "showRankingScore": True, "attributesToRetrieve": ["id"]}
        status, mine = gw.post("/indexes/packages/search", body)
        assert status == 200
        hits, total = [], 0
        for shard in range(SHARDS):
            node = nodes[placement[shard][0]]
            status, part = node.post(f"/indexes/{storage_of(gw, 'packages')}__s{shard}/search",
                                     {"q": q, "limit": 25, "showRankingScore": True,
                                      "attributesToRetrieve": ["id", "_miroir_seq"]})
            assert status == 200
            total += part["estimatedTotalHits"]
            # ties in write order, as one node breaks them (the sequence number every document carries)
            hits += [(-h["_rankingScore"], h["_miroir_seq"], shard, pos, h["id"]) for pos, h in enumerate(part["hits"])]
        ideal = [(h[4], round(-h[0], 9)) for h in sorted(hits)[5:25]]
        assert same_ranking(top(mine), ideal), q
        assert mine["estimatedTotalHits"] == min(total, 1000)
        assert (mine["offset"], mine["limit"]) == (5, 20)


@pytest.mark.parametrize("filter_", [None, "registry = npm", "month >= 2023-01", ["registry = pypi", "month < 2022-06"]])
def test_facet_counts_equal_a_single_node(cluster, loaded, baseline, filter_):
    body = {"q": "", "facets": ["registry", "month"], "limit": 0}
    if filter_:
        body["filter"] = filter_
    status, mine = cluster["gateway"].post("/indexes/packages/search", body)
    assert status == 200, mine
    status, single = baseline.post("/indexes/packages/search", body)
    assert mine["facetDistribution"] == single["facetDistribution"]
    assert mine["estimatedTotalHits"] == single["estimatedTotalHits"]  # capped at maxTotalHits


def test_facets_on_text_queries_equal_a_single_node(cluster, loaded, baseline):
    for q in ["react", "django", "http client"]:
        body = {"q": q, "facets": ["registry"], "limit": 3}
        mine = cluster["gateway"].post("/indexes/packages/search", body)[1]
        single = baseline.post("/indexes/packages/search", body)[1]
        assert mine["facetDistribution"] == single["facetDistribution"], q


def test_placeholder_total_is_capped_at_max_total_hits(cluster, loaded):
    status, page = cluster["gateway"].post("/indexes/packages/search", {"q": "", "limit": 5})
    assert page["estimatedTotalHits"] == 1000  # 10121 documents, 4 shards each counting to the cap
    status, page = cluster["gateway"].post("/indexes/packages/search", {"q": "", "hitsPerPage": 10, "page": 3})
    assert (page["totalHits"], page["totalPages"], page["page"], len(page["hits"])) == (1000, 100, 3, 10)


def test_get_search_with_query_string(cluster, loaded, baseline):
    status, mine = cluster["gateway"].get("/indexes/packages/search", q="django", limit="5",
                                          attributesToRetrieve="id,name", filter="registry = pypi")
    assert status == 200, mine
    assert len(mine["hits"]) == 5 and set(mine["hits"][0]) == {"id", "name"}
    status, single = baseline.get("/indexes/packages/search", q="django", limit="5", filter="registry = pypi")
    assert mine["estimatedTotalHits"] == single["estimatedTotalHits"]


def test_paging_is_stable(cluster, loaded):
    """A placeholder query ties every document; replicas break ties differently, yet walking the
    pages again and again never repeats or skips a document."""
    gw = cluster["gateway"]
    body = {"q": "", "filter": "month = 2023-07", "attributesToRetrieve": ["id"]}
    status, whole = gw.post("/indexes/packages/search", dict(body, limit=1000))
    expected = [h["id"] for h in whole["hits"]]
    assert 40 < len(expected) < 1000
    for _ in range(3):
        seen = []
        for offset in range(0, len(expected), 7):
            status, page = gw.post("/indexes/packages/search", dict(body, offset=offset, limit=7))
            seen += [h["id"] for h in page["hits"]]
        assert seen == expected


def test_get_document_routes_to_its_shard(cluster, loaded):
    some = loaded["docs"][1234]
    status, doc = cluster["gateway"].get(f"/indexes/packages/documents/{some['id']}")
    assert status == 200 and doc == some
    status, doc = cluster["gateway"].get(f"/indexes/packages/documents/{some['id']}", fields="name")
    assert doc == {"name": some["name"]}


def test_update_then_delete(cluster):
    gw = cluster["gateway"]
    docs = [{"id": f"doc-{i}", "title": f"mirror number {i}", "color": "silver"} for i in range(20)]
    status, task = gw.post("/indexes", {"uid": "mutations", "primaryKey": "id", "shards": 3, "replicationFactor": 2})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, task = gw.post("/indexes/mutations/documents", docs)
    t = gw.wait_task(task["taskUid"])
    assert t["status"] == "succeeded" and t["details"] == {"receivedDocuments": 20, "indexedDocuments": 20}

    # PUT merges fields; POST replaces the document
    status, task = gw.req("PUT", "/indexes/mutations/documents", [{"id": "doc-3", "color": "gold"}])
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    assert gw.get("/indexes/mutations/documents/doc-3")[1] == {"id": "doc-3", "title": "mirror number 3", "color": "gold"}
    status, task = gw.post("/indexes/mutations/documents", [{"id": "doc-4", "title": "replaced"}])
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    assert gw.get("/indexes/mutations/documents/doc-4")[1] == {"id": "doc-4", "title": "replaced"}

    status, task = gw.req("DELETE", "/indexes/mutations/documents/doc-5")
    assert status == 202 and task["type"] == "documentDeletion"
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, err = gw.get("/indexes/mutations/documents/doc-5")
    assert status == 404 and err["code"] == "document_not_found"
    status, found = gw.post("/indexes/mutations/search", {"q": "mirror", "limit": 100})
    assert {h["id"] for h in found["hits"]} == {f"doc-{i}" for i in range(20)} - {"doc-4", "doc-5"}
    # every replica agrees
    for name, node in cluster["nodes"].items():
        for shard in range(3):
            status, page = node.get(f"/indexes/{storage_of(cluster['gateway'], 'mutations')}__s{shard}/documents",
                                    limit=100)
            if status == 200:
                ids = {d["id"] for d in page["results"]}
                assert "doc-5" not in ids
                assert all(shard_of(i, 3) == shard for i in ids)


def test_official_python_sdk_works_unchanged(cluster):
    client = meilisearch.Client(f"http://{HOST}:{GATEWAY_PORT}")
    assert client.health()["status"] == "available"
    index = client.index("sdk_movies")
    task = index.add_documents([{"movie_id": 1, "title": "Carol"}, {"movie_id": 2, "title": "Wonder Woman"},
                                {"movie_id": 3, "title": "Life of Pi"}])
    done = client.wait_for_task(task.task_uid, timeout_in_ms=60000)
    assert done.status == "succeeded"
    assert index.fetch_info().primary_key == "movie_id"  # inferred, as Meilisearch does
    result = index.search("wonder")
    assert [h["title"] for h in result["hits"]] == ["Wonder Woman"]
    assert index.get_document(3).title == "Life of Pi"
    client.wait_for_task(index.update_filterable_attributes(["title"]).task_uid, timeout_in_ms=60000)
    assert index.get_filterable_attributes() == ["title"]
    found = index.search("", {"filter": "title = Carol"})
    assert [h["movie_id"] for h in found["hits"]] == [1]
    multi = client.multi_search([{"indexUid": "sdk_movies", "q": "life"}, {"indexUid": "sdk_movies", "q": "carol"}])
    assert [r["hits"][0]["movie_id"] for r in multi["results"]] == [3, 1]
    assert index.get_stats().number_of_documents == 3
    client.wait_for_task(index.delete_documents([2]).task_uid, timeout_in_ms=60000)
    assert index.get_documents().total == 2
    assert client.wait_for_task(client.delete_index("sdk_movies").task_uid, timeout_in_ms=60000).status == "succeeded"
    with pytest.raises(meilisearch.errors.MeilisearchApiError) as gone:
        index.fetch_info()
    assert gone.value.code == "index_not_found"


def test_official_js_sdk_works_unchanged(cluster):
    import os
    import subprocess
    from conftest import DEPS, ROOT
    script = os.path.join(ROOT, "tests", "integration", "sdk_js.mjs")
    env = dict(os.environ, NODE_PATH=os.path.join(DEPS, "npm", "node_modules"))
    # ESM resolves packages from the script's folder upwards, so run a copy beside node_modules
    copy = os.path.join(DEPS, "npm", "sdk_js.mjs")
    with open(script) as src, open(copy, "w") as dst:
        dst.write(src.read())
    done = subprocess.run(["node", copy, f"http://{HOST}:{GATEWAY_PORT}"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "js sdk: ok" in done.stdout
