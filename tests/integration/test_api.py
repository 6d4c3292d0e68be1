"""Meilisearch routes beyond the slice, compared with a single node where the data allows."""
import collections

import pytest

from conftest import node_wait_task, storage_of, wait_until


def test_browse_in_a_stable_order_with_totals(cluster, loaded, baseline):
    gw = cluster["gateway"]
    status, first = gw.get("/indexes/packages/documents", limit="50", offset="0", fields="id")
    assert status == 200, first
    assert (first["offset"], first["limit"], first["total"]) == (0, 50, len(loaded["docs"]))
    # walking pages gives every document once
    seen = []
    for offset in range(0, 600, 97):
        status, page = gw.get("/indexes/packages/documents", limit="97", offset=str(offset), fields="id")
        seen += [d["id"] for d in page["results"]]
    assert len(seen) == len(set(seen)) == 600 - 600 % 97 + 97 and set(seen) <= set(loaded["by_id"])
    # the same pages again: the same order
    status, again = gw.get("/indexes/packages/documents", limit="50", offset="0", fields="id")
    assert again == first


def test_browse_with_filter_fields_and_ids(cluster, loaded, baseline):
    gw = cluster["gateway"]
    body = {"filter": "registry = npm AND month >= 2024-01", "fields": ["id", "name"], "limit": 1000}
    status, mine = gw.post("/indexes/packages/documents/fetch", body)
    assert status == 200, mine
    status, single = baseline.post("/indexes/packages/documents/fetch", body)
    assert mine["total"] == single["total"]
    assert sorted(d["id"] for d in mine["results"]) == sorted(d["id"] for d in single["results"])
    assert all(set(d) == {"id", "name"} for d in mine["results"])
    ids = [d["id"] for d in loaded["docs"][:5]] + [999999999]
    status, mine = gw.post("/indexes/packages/documents/fetch", {"ids": ids})
    assert sorted(d["id"] for d in mine["results"]) == sorted(ids[:5]) and mine["total"] == 5


@pytest.mark.parametrize("sort", [["name:asc"], ["month:desc", "name:asc"]])
def test_browse_sorted_like_a_single_node(cluster, loaded, baseline, sort):
    gw = cluster["gateway"]
    body = {"sort": sort, "fields": ["id"], "limit": 30, "offset": 20, "filter": "registry = pypi"}
    status, mine = gw.post("/indexes/packages/documents/fetch", body)
    assert status == 200, mine
    # Meilisearch 1.21 starts a sorted fetch one document early when offset > 0 (offset 20 returns
    # the 20th document, not the 21st); Miroir asks its shards from 0. So the single node is read
    # from 0 and sliced here.
    status, single = baseline.post("/indexes/packages/documents/fetch", dict(body, offset=0, limit=50))
    single["results"] = single["results"][20:]
    assert mine["total"] == single["total"]
    assert all(set(d) == {"id"} for d in mine["results"])  # sort fields fetched for the merge are removed

    def keys(ids):
        by_id = loaded["by_id"]
        return [tuple(by_id[i][r.split(":")[0]] for r in sort) for i in ids]
    assert keys([d["id"] for d in mine["results"]]) == keys([d["id"] for d in single["results"]])


def test_search_with_sort_like_a_single_node(cluster, loaded, baseline):
    gw = cluster["gateway"]
    for q, sort in [("", ["month:desc"]), ("react", ["name:asc"]), ("django", ["month:asc", "name:desc"])]:
        body = {"q": q, "sort": sort, "limit": 25, "attributesToRetrieve": ["id", "name", "month"]}
        status, mine = gw.post("/indexes/packages/search", body)
        assert status == 200, mine
        status, single = baseline.post("/indexes/packages/search", body)
        fields = [r.split(":")[0] for r in sort]
        assert [tuple(h[f] for f in fields) for h in mine["hits"]] == \
               [tuple(h[f] for f in fields) for h in single["hits"]], (q, sort)


def test_stats_count_each_document_once(cluster, loaded, baseline):
    status, mine = cluster["gateway"].get("/indexes/packages/stats")
    assert status == 200, mine
    status, single = baseline.get("/indexes/packages/stats")
    assert mine["numberOfDocuments"] == single["numberOfDocuments"] == len(loaded["docs"])
    assert mine["fieldDistribution"] == single["fieldDistribution"]
    assert mine["isIndexing"] is False
    status, everything = cluster["gateway"].get("/stats")
    assert everything["indexes"]["packages"]["numberOfDocuments"] == len(loaded["docs"])
    assert everything["databaseSize"] > 0


def test_delete_batch_filter_and_all(cluster):
    gw = cluster["gateway"]
    status, task = gw.post("/indexes", {"uid": "api_docs", "primaryKey": "id", "shards": 3, "replicationFactor": 2})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, task = gw.req("PATCH", "/indexes/api_docs/settings", {"filterableAttributes": ["kind"]})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    docs = [{"id": i, "kind": "odd" if i % 2 else "even"} for i in range(40)]
    status, task = gw.post("/indexes/api_docs/documents", docs)
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"

    status, task = gw.post("/indexes/api_docs/documents/delete-batch", [0, 2, "4"])
    done = gw.wait_task(task["taskUid"])
    assert done["status"] == "succeeded" and done["type"] == "documentDeletion"
    assert done["details"]["providedIds"] == 3 and done["details"]["deletedDocuments"] == 3
    assert gw.get("/indexes/api_docs/documents", limit="100")[1]["total"] == 37

    status, task = gw.post("/indexes/api_docs/documents/delete", {"filter": "kind = odd"})
    assert status == 202, task
    done = gw.wait_task(task["taskUid"])
    # how many it deleted, added up over the shards' own counts, as a node counts them
    assert done["status"] == "succeeded"
    assert done["details"] == {"providedIds": 0, "deletedDocuments": 20, "originalFilter": '"kind = odd"'}, done
    status, left = gw.get("/indexes/api_docs/documents", limit="100")
    assert left["total"] == 17 and all(d["kind"] == "even" for d in left["results"])

    status, task = gw.req("DELETE", "/indexes/api_docs/documents")
    done = gw.wait_task(task["taskUid"])
    assert done["status"] == "succeeded"
    assert done["details"] == {"providedIds": 0, "deletedDocuments": 17, "originalFilter": None}, done
    assert gw.get("/indexes/api_docs/documents")[1]["total"] == 0
    assert gw.get("/indexes/api_docs/stats")[1]["numberOfDocuments"] == 0


def test_delete_errors(cluster, loaded):
    gw = cluster["gateway"]
    # the syntax is checked at once; whether the attribute is filterable when the task runs, as on
    # one node (a settings task queued before it may make it so)
    status, err = gw.post("/indexes/packages/documents/delete", {"filter": "summary = "})
    assert (status, err["code"]) == (400, "invalid_document_filter"), err
    assert "__s" not in err["message"] and "packages-" not in err["message"], err
    status, task = gw.post("/indexes/packages/documents/delete", {"filter": "summary = x"})
    assert status == 202, task
    done = gw.wait_task(task["taskUid"])
    assert (done["status"], done["error"]["code"]) == ("failed", "invalid_document_filter"), done
    assert "__s" not in done["error"]["message"] and "packages-" not in done["error"]["message"], done
    status, err = gw.post("/indexes/packages/documents/delete", {})
    assert (status, err["code"]) == (400, "missing_document_filter")
    # a value that is no valid id names no document: its deletion deletes nothing, as on one node
    status, task = gw.post("/indexes/packages/documents/delete-batch", ["no-such-id", "not ok", {"id": 1}])
    done = gw.wait_task(task["taskUid"])
    assert done["status"] == "succeeded", done
    assert done["details"] == {"providedIds": 3, "deletedDocuments": 1, "originalFilter": None}, done
    status, err = gw.post("/indexes/packages/documents/delete-batch", {"id": 1})
    assert (status, err["code"]) == (400, "malformed_payload")
    status, err = gw.get("/indexes/packages/documents", limit="-1")
    assert (status, err["code"]) == (400, "invalid_document_limit")
    status, err = gw.post("/indexes/nope/documents/fetch", {})
    assert (status, err["code"]) == (404, "index_not_found")


def test_settings_sub_routes(cluster, loaded):
    gw = cluster["gateway"]
    status, value = gw.get("/indexes/packages/settings/filterable-attributes")
    assert status == 200 and sorted(value) == ["month", "registry", "version"]
    status, task = gw.req("PUT", "/indexes/packages/settings/stop-words", ["the", "a"])
    assert status == 202 and task["type"] == "settingsUpdate"
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    assert sorted(gw.get("/indexes/packages/settings/stop-words")[1]) == ["a", "the"]
    status, task = gw.req("DELETE", "/indexes/packages/settings/stop-words")
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    assert gw.get("/indexes/packages/settings/stop-words")[1] == []
    # every replica of every shard has the same settings
    for name, node in cluster["nodes"].items():
        for shard in range(4):
            status, s = node.get(f"/indexes/{storage_of(cluster['gateway'], 'packages')}__s{shard}/settings/stop-words")
            assert status in (200, 404) and (status == 404 or s == [])
    assert gw.get("/indexes/packages/settings/no-such-setting") == (404, None)  # no such route: empty, as on a node
    status, err = gw.req("PUT", "/indexes/packages/settings/stop-words", {"not": "a list"})
    assert status == 400 and err["code"] == "invalid_settings_stop_words"


def test_facet_search_like_a_single_node(cluster, loaded, baseline):
    for body in [{"facetName": "month", "facetQuery": "2023"}, {"facetName": "registry"},
                 {"facetName": "month", "q": "django", "filter": "registry = pypi"}]:
        status, mine = cluster["gateway"].post("/indexes/packages/facet-search", body)
        assert status == 200, mine
        status, single = baseline.post("/indexes/packages/facet-search", body)
        assert mine["facetHits"] == single["facetHits"], body
    status, err = cluster["gateway"].post("/indexes/packages/facet-search", {"facetName": "summary"})
    assert status == 400 and err["code"] == "invalid_facet_search_facet_name"


def test_multi_search_plain_and_federated(cluster, loaded, baseline):
    gw = cluster["gateway"]
    queries = [{"indexUid": "packages", "q": "react", "limit": 5, "attributesToRetrieve": ["id"]},
               {"indexUid": "packages", "q": "", "filter": "registry = pypi", "facets": ["month"], "limit": 0}]
    status, mine = gw.post("/multi-search", {"queries": queries})
    assert status == 200, mine
    status, single = baseline.post("/multi-search", {"queries": queries})
    assert [r["indexUid"] for r in mine["results"]] == ["packages", "packages"]
    assert len(mine["results"][0]["hits"]) == 5
    assert mine["results"][1]["facetDistribution"] == single["results"][1]["facetDistribution"]
    assert mine["results"][1]["estimatedTotalHits"] == single["results"][1]["estimatedTotalHits"]

    fed = {"federation": {"limit": 10, "offset": 2},
           "queries": [{"indexUid": "packages", "q": "react router"},
                       {"indexUid": "packages", "q": "django", "federationOptions": {"weight": 0.5}}]}
    status, mine = gw.post("/multi-search", fed)
    assert status == 200, mine
    status, single = baseline.post("/multi-search", fed)
    assert (mine["offset"], mine["limit"]) == (2, 10)
    w_mine = [round(h["_federation"]["weightedRankingScore"], 6) for h in mine["hits"]]
    w_single = [round(h["_federation"]["weightedRankingScore"], 6) for h in single["hits"]]
    assert w_mine == sorted(w_mine, reverse=True)
    assert w_mine == w_single
    assert all(h["_federation"]["indexUid"] == "packages" for h in mine["hits"])

    status, err = gw.post("/multi-search", {"queries": [{"indexUid": "packages"}, {"indexUid": "nope"}]})
    # Meilisearch answers 400 for an unknown index inside a multi-search
    assert (status, err["code"]) == (400, "index_not_found") and "queries[1]" in err["message"]
    status, err = gw.post("/multi-search", {"federation": {}, "queries": [{"indexUid": "packages", "limit": 3}]})
    assert (status, err["code"]) == (400, "invalid_multi_search_query_pagination")


def test_task_list_and_filters(cluster, loaded):
    gw = cluster["gateway"]
    status, page = gw.get("/tasks", limit="3")
    assert status == 200, page
    assert len(page["results"]) == 3 and page["total"] >= 3
    uids = [t["uid"] for t in page["results"]]
    assert uids == sorted(uids, reverse=True) and page["next"] == uids[-1] - 1
    status, more = gw.get("/tasks", limit="3", **{"from": str(page["next"])})
    assert more["results"][0]["uid"] == page["next"]
    status, created = gw.get("/tasks", types="indexCreation", indexUids="packages")
    assert [t["type"] for t in created["results"]] and all(t["type"] == "indexCreation" and
                                                           t["indexUid"] == "packages" for t in created["results"])
    status, ok = gw.get("/tasks", statuses="succeeded", limit="1000")
    assert all(t["status"] == "succeeded" for t in ok["results"])
    status, old = gw.get("/tasks", beforeEnqueuedAt="2000-01-01T00:00:00Z")
    assert old["total"] == 0
    status, recent = gw.get("/tasks", afterEnqueuedAt="2000-01-01")
    assert recent["total"] == page["total"]
    for params, code in [({"statuses": "sleeping"}, "invalid_task_statuses"), ({"types": "nap"}, "invalid_task_types"),
                         ({"uids": "x"}, "invalid_task_uids"), ({"limit": "-2"}, "invalid_task_limit"),
                         ({"afterEnqueuedAt": "yesterday"}, "invalid_task_after_enqueued_at")]:
        status, err = gw.get("/tasks", **params)
        assert (status, err["code"]) == (400, code), params
    status, err = gw.post("/tasks/cancel", {})
    assert (status, err["code"]) == (400, "missing_task_filters")


def _index_both(cluster, baseline, uid, settings, docs, shards=3):
    gw = cluster["gateway"]
    status, task = gw.post("/indexes", {"uid": uid, "primaryKey": "id", "shards": shards, "replicationFactor": 2})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, task = gw.req("PATCH", f"/indexes/{uid}/settings", settings)
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, task = gw.post(f"/indexes/{uid}/documents", docs)
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    from conftest import node_wait_task
    status, t = baseline.post("/indexes", {"uid": uid, "primaryKey": "id"})
    node_wait_task(baseline, t["taskUid"])
    status, t = baseline.req("PATCH", f"/indexes/{uid}/settings", settings)
    node_wait_task(baseline, t["taskUid"])
    status, t = baseline.post(f"/indexes/{uid}/documents", docs)
    assert node_wait_task(baseline, t["taskUid"])["status"] == "succeeded"


def test_distinct_across_shards_like_a_single_node(cluster, baseline):
    docs = [{"id": i, "family": f"f{i % 7}", "rank": (i * 37) % 101, "text": "mirror glass"} for i in range(120)]
    _index_both(cluster, baseline, "api_distinct", {"filterableAttributes": ["family"], "sortableAttributes": ["rank"]},
                docs)
    gw = cluster["gateway"]
    for body in [{"q": "", "distinct": "family", "sort": ["rank:asc"], "limit": 10},
                 {"q": "", "distinct": "family", "sort": ["rank:desc"], "offset": 2, "limit": 3,
                  "attributesToRetrieve": ["id"]}]:
        status, mine = gw.post("/indexes/api_distinct/search", body)
        assert status == 200, mine
        status, single = baseline.post("/indexes/api_distinct/search", body)
        assert [h["id"] for h in mine["hits"]] == [h["id"] for h in single["hits"]], body
        assert [set(h) for h in mine["hits"]] == [set(h) for h in single["hits"]]
    # the index setting applies when the query doesn't say
    status, task = gw.req("PATCH", "/indexes/api_distinct/settings", {"distinctAttribute": "family"})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, mine = gw.post("/indexes/api_distinct/search", {"q": "", "sort": ["rank:asc"], "limit": 20})
    assert len(mine["hits"]) == 7 and len({h["family"] for h in mine["hits"]}) == 7


def test_csv_documents_like_a_single_node(cluster, baseline):
    gw = cluster["gateway"]
    csv = b'id,title:string,price:number,ok:boolean,note\n1,"Hello, ""world""",3.5,true,\n2,plain,7,false,x\n'
    status, task = gw.post("/indexes/api_csv/documents", raw=csv, ctype="text/csv")
    assert status == 202, task
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, t = baseline.post("/indexes/api_csv/documents", raw=csv, ctype="text/csv")
    from conftest import node_wait_task
    assert node_wait_task(baseline, t["taskUid"])["status"] == "succeeded"
    for doc_id in ("1", "2"):
        assert gw.get(f"/indexes/api_csv/documents/{doc_id}")[1] == baseline.get(f"/indexes/api_csv/documents/{doc_id}")[1]
    status, task = gw.post("/indexes/api_csv/documents", raw=b"id;t\n3;semi\n", ctype="text/csv", csvDelimiter=";")
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    assert gw.get("/indexes/api_csv/documents/3")[1] == {"id": "3", "t": "semi"}
    status, err = gw.post("/indexes/api_csv/documents", raw=b"id,p:number\n4,abc\n", ctype="text/csv")
    assert (status, err["code"]) == (400, "malformed_payload")
    status, err = gw.post("/indexes/api_csv/documents", raw=b"id\n5\n", ctype="text/csv", csvDelimiter=";;")
    assert (status, err["code"]) == (400, "invalid_document_csv_delimiter")


def test_index_life_cycle(cluster):
    gw = cluster["gateway"]
    status, task = gw.post("/indexes", {"uid": "api_life", "shards": 2, "replicationFactor": 2})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    assert gw.get("/indexes/api_life")[1]["primaryKey"] is None
    # an empty index may take a primary key
    status, task = gw.req("PATCH", "/indexes/api_life", {"primaryKey": "sku"})
    assert status == 202 and task["type"] == "indexUpdate"
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    assert gw.get("/indexes/api_life")[1]["primaryKey"] == "sku"
    status, task = gw.post("/indexes/api_life/documents", [{"sku": "old-1", "t": "old"}, {"sku": "old-2", "t": "old"}])
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    # not once it has documents
    status, task = gw.req("PATCH", "/indexes/api_life", {"primaryKey": "other"})
    done = gw.wait_task(task["taskUid"])
    assert done["status"] == "failed" and done["error"]["code"] == "index_primary_key_already_exists"

    storage = storage_of(gw, "api_life")
    status, task = gw.req("DELETE", "/indexes/api_life")
    assert status == 202 and task["type"] == "indexDeletion"
    assert gw.get("/indexes/api_life")[0] == 404
    assert "api_life" not in [i["uid"] for i in gw.get("/indexes", limit="1000")[1]["results"]]
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    for node in cluster["nodes"].values():
        for shard in range(2):
            assert node.get(f"/indexes/{storage}__s{shard}")[0] == 404

    # the name can be used again, and nothing of the old index comes back
    status, task = gw.post("/indexes", {"uid": "api_life", "primaryKey": "sku", "shards": 3})
    assert status == 202, task
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, task = gw.post("/indexes/api_life/documents", [{"sku": "new-1", "t": "new"}])
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, found = gw.post("/indexes/api_life/search", {"q": ""})
    assert [h["sku"] for h in found["hits"]] == ["new-1"]
    assert gw.get("/indexes/api_life/stats")[1]["numberOfDocuments"] == 1

    # deleting a missing index is a task that fails, as on one node
    status, task = gw.req("DELETE", "/indexes/nope")
    assert status == 202, task
    done = gw.wait_task(task["taskUid"])
    assert (done["status"], done["error"]["code"]) == ("failed", "index_not_found"), done
    status, err = gw.req("PATCH", "/indexes/api_life", {"primaryKey": 3})
    assert (status, err["code"]) == (400, "invalid_index_primary_key")


def test_swap_indexes(cluster):
    gw = cluster["gateway"]
    for uid, word, n in (("swap_a", "apple", 3), ("swap_b", "banana", 5)):
        status, task = gw.post("/indexes", {"uid": uid, "primaryKey": "id", "shards": 2})
        assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
        status, task = gw.post(f"/indexes/{uid}/documents", [{"id": i, "fruit": word} for i in range(n)])
        assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, task = gw.post("/swap-indexes", [{"indexes": ["swap_a", "swap_b"]}])
    assert status == 202 and task["type"] == "indexSwap"
    done = gw.wait_task(task["taskUid"])
    assert done["status"] == "succeeded"
    assert done["details"] == {"swaps": [{"indexes": ["swap_a", "swap_b"], "rename": False}]}
    assert gw.get("/indexes/swap_a/stats")[1]["numberOfDocuments"] == 5
    assert gw.post("/indexes/swap_a/search", {"q": "banana"})[1]["estimatedTotalHits"] == 5
    assert gw.post("/indexes/swap_b/search", {"q": "apple"})[1]["estimatedTotalHits"] == 3
    # writes after the swap land in the swapped data
    status, task = gw.post("/indexes/swap_a/documents", [{"id": 99, "fruit": "banana"}])
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    assert gw.post("/indexes/swap_a/search", {"q": "banana"})[1]["estimatedTotalHits"] == 6
    assert gw.get("/indexes/swap_b/documents/99")[0] == 404
    # and the old tasks still report against the data they wrote
    assert gw.get(f"/tasks/{task['taskUid']}")[1]["indexUid"] == "swap_a"

    status, task = gw.post("/swap-indexes", [{"indexes": ["swap_a", "nope"]}])
    assert gw.wait_task(task["taskUid"])["error"]["code"] == "index_not_found"
    status, err = gw.post("/swap-indexes", [{"indexes": ["swap_a", "swap_b"]}, {"indexes": ["swap_b", "x"]}])
    assert (status, err["code"]) == (400, "invalid_swap_duplicate_index_found")
    status, err = gw.post("/swap-indexes", [{"indexes": ["swap_a"]}])
    assert (status, err["code"]) == (400, "invalid_swap_indexes")


def both_do(gw, node, method, path, body=None):
    """The same request to the gateway and to one plain node: (gateway's, node's) finished task,
    or their error answers when the request is refused outright."""
    answers = []
    for http, wait in ((gw, gw.wait_task), (node, lambda uid: node_wait_task(node, uid))):
        status, out = http.req(method, path, body)
        answers.append((status, wait(out["taskUid"]) if status in (200, 202) else out))
    return answers


def test_rename_like_a_single_node(cluster, baseline):
    """An index renamed (PATCH with a uid, or a swap with rename) keeps its documents and takes
    writes under the new name; the old name is free at once. Refusals and task failures read as
    the node's."""
    gw = cluster["gateway"]
    for http, wait in ((gw, gw.wait_task), (baseline, lambda uid: node_wait_task(baseline, uid))):
        for uid in ("ren_a", "ren_b", "ren_c", "ren_taken"):
            wait(http.req("DELETE", f"/indexes/{uid}")[1]["taskUid"])
        for uid in ("ren_a", "ren_taken"):
            assert wait(http.post("/indexes", {"uid": uid, "primaryKey": "id"})[1]["taskUid"])["status"] == "succeeded"
        task = http.post("/indexes/ren_a/documents", [{"id": i, "w": "pear"} for i in range(7)])[1]
        assert wait(task["taskUid"])["status"] == "succeeded"

    (gs, gt), (ns, nt) = both_do(gw, baseline, "PATCH", "/indexes/ren_a", {"uid": "ren_b"})
    assert gs == ns == 202 and gt["status"] == nt["status"] == "succeeded", (gt, nt)
    assert gt["details"] == nt["details"] == {"primaryKey": None, "oldIndexUid": "ren_a", "newIndexUid": "ren_b"}
    assert gt["indexUid"] == nt["indexUid"] == "ren_a"
    assert gw.get("/indexes/ren_b/stats")[1]["numberOfDocuments"] == 7
    assert gw.get("/indexes/ren_a")[1]["code"] == "index_not_found"
    status, task = gw.post("/indexes/ren_b/documents", [{"id": 100, "w": "pear"}])
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    assert gw.post("/indexes/ren_b/search", {"q": "pear"})[1]["estimatedTotalHits"] == 8

    (gs, gt), (ns, nt) = both_do(gw, baseline, "POST", "/swap-indexes", [{"indexes": ["ren_b", "ren_c"], "rename": True}])
    assert gt["status"] == nt["status"] == "succeeded" and gt["details"] == nt["details"], (gt, nt)
    assert gw.get("/indexes/ren_c/stats")[1]["numberOfDocuments"] == 8
    # the old names are free: a new index under one starts empty
    status, task = gw.post("/indexes", {"uid": "ren_a", "primaryKey": "id"})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    assert gw.get("/indexes/ren_a/stats")[1]["numberOfDocuments"] == 0
    assert gw.wait_task(gw.req("DELETE", "/indexes/ren_a")[1]["taskUid"])["status"] == "succeeded"
    baseline.req("DELETE", "/indexes/ren_a")

    for method, path, body in (("PATCH", "/indexes/ren_c", {"uid": "ren_taken"}),
                               ("PATCH", "/indexes/ren_nope", {"uid": "ren_d"}),
                               ("POST", "/swap-indexes", [{"indexes": ["ren_c", "ren_taken"], "rename": True}]),
                               ("POST", "/swap-indexes", [{"indexes": ["ren_nope", "ren_d"], "rename": True}]),
                               ("POST", "/swap-indexes", [{"indexes": ["ren_nope", "ren_d"]},
                                                          {"indexes": ["ren_c", "ren_e"]}]),
                               ("POST", "/swap-indexes", [{"indexes": ["ren_c", "ren_d"], "rename": "yes"}]),
                               ("POST", "/swap-indexes", [{"indexes": ["ren_c", "ren_d", "ren_e"]}]),
                               ("PATCH", "/indexes/ren_c", {"uid": "not a uid"})):
        (gs, g_out), (ns, n_out) = both_do(gw, baseline, method, path, body)
        assert gs == ns, (method, path, body, g_out, n_out)
        g_err, n_err = (g_out.get("error"), n_out.get("error")) if gs == 202 else (g_out, n_out)
        assert g_err and g_err["code"] == n_err["code"], (method, path, body, g_out, n_out)
        if gs == 202 or n_err["code"] == "invalid_swap_indexes":
            assert g_err["message"] == n_err["message"], (g_err, n_err)
    assert gw.get("/indexes/ren_c/stats")[1]["numberOfDocuments"] == 8
    assert gw.get("/indexes/ren_taken/stats")[1]["numberOfDocuments"] == 0
    for uid in ("ren_c", "ren_taken"):
        assert gw.wait_task(gw.req("DELETE", f"/indexes/{uid}")[1]["taskUid"])["status"] == "succeeded"


def test_geo_sort_and_filter_like_a_single_node(cluster, baseline):
    docs = [{"id": i, "name": f"cafe {i}", "_geo": {"lat": 48.80 + (i % 13) * 0.01, "lng": 2.30 + (i % 7) * 0.013}}
            for i in range(60)]
    _index_both(cluster, baseline, "api_geo", {"filterableAttributes": ["_geo"], "sortableAttributes": ["_geo"]}, docs)
    for body in [{"q": "", "sort": ["_geoPoint(48.85, 2.35):asc"], "limit": 15},
                 {"q": "cafe", "sort": ["_geoPoint(48.9, 2.3):desc"], "limit": 10, "offset": 5},
                 {"q": "", "filter": "_geoRadius(48.85, 2.35, 3000)", "sort": ["_geoPoint(48.85, 2.35):asc"],
                  "limit": 100}]:
        status, mine = cluster["gateway"].post("/indexes/api_geo/search", body)
        assert status == 200, mine
        status, single = baseline.post("/indexes/api_geo/search", body)
        d_mine = [h["_geoDistance"] for h in mine["hits"]]
        d_single = [h["_geoDistance"] for h in single["hits"]]
        # the gateway merges by exact distance; one node's geo sort may swap neighbours a metre
        # apart (its rounded _geoDistance then steps 2079, 2078)
        assert len(d_mine) == len(d_single) and all(abs(a - b) <= 1 for a, b in zip(d_mine, d_single)), body
        assert d_mine == sorted(d_mine, reverse="desc" in body["sort"][0])
        assert mine["estimatedTotalHits"] == single["estimatedTotalHits"]


def test_vector_and_hybrid_search_like_a_single_node(cluster, baseline):
    settings = {"embedders": {"manual": {"source": "userProvided", "dimensions": 3}}}
    docs = [{"id": i, "title": f"vector doc {i}",
             "_vectors": {"manual": [((i * 7) % 11 + 1) / 12.0, ((i * 3) % 5 + 1) / 6.0, (i % 4 + 1) / 5.0]}}
            for i in range(40)]
    _index_both(cluster, baseline, "api_vectors", settings, docs)
    for body in [{"vector": [0.5, 0.2, 0.9], "hybrid": {"embedder": "manual", "semanticRatio": 1.0}, "limit": 10,
                  "showRankingScore": True},
                 {"q": "doc", "vector": [0.1, 0.9, 0.3], "hybrid": {"embedder": "manual", "semanticRatio": 0.5},
                  "limit": 8, "showRankingScore": True}]:
        status, mine = cluster["gateway"].post("/indexes/api_vectors/search", body)
        assert status == 200, mine
        status, single = baseline.post("/indexes/api_vectors/search", body)
        s_mine = [round(h["_rankingScore"], 6) for h in mine["hits"]]
        s_single = [round(h["_rankingScore"], 6) for h in single["hits"]]
        # Vector search is approximate (an ANN graph per index): S small graphs and one big one
        # may each miss a different far neighbour. The best hits and most of the page must agree.
        assert s_mine == sorted(s_mine, reverse=True) and len(s_mine) == len(s_single), body
        assert s_mine[:5] == s_single[:5], body
        assert sum((collections.Counter(s_mine) & collections.Counter(s_single)).values()) >= 0.7 * len(s_single), body
    status, err = cluster["gateway"].post("/indexes/api_vectors/search",
                                          {"vector": [1, 2], "hybrid": {"embedder": "manual"}})
    assert status == 400 and err["code"] == "invalid_vector_dimensions"


def test_batches_one_per_started_task(cluster):
    """Miroir applies each task on its own: a task is a batch of its own (batchUid its uid) from
    when it starts, and /batches shows those batches as a node shows its own."""
    gw = cluster["gateway"]
    status, created = gw.post("/indexes", {"uid": "api_batches", "shards": 2})
    assert gw.wait_task(created["taskUid"])["status"] == "succeeded"
    status, write = gw.post("/indexes/api_batches/documents", [{"id": 1}, {"id": 2}])
    task = gw.wait_task(write["taskUid"])
    assert task["status"] == "succeeded" and task["batchUid"] == task["uid"]
    status, batch = gw.get(f"/batches/{task['uid']}")
    assert status == 200, batch
    assert set(batch) == {"uid", "progress", "details", "stats", "duration", "startedAt", "finishedAt",
                          "batchStrategy"}
    assert batch["uid"] == task["uid"] and batch["progress"] is None and batch["details"] == task["details"]
    assert (batch["duration"], batch["startedAt"], batch["finishedAt"]) == (task["duration"], task["startedAt"],
                                                                            task["finishedAt"])
    assert batch["stats"]["totalNbTasks"] == 1 and batch["stats"]["status"] == {"succeeded": 1}
    assert batch["stats"]["types"] == {"documentAdditionOrUpdate": 1}
    assert batch["stats"]["indexUids"] == {"api_batches": 1}
    status, listed = gw.get("/batches", indexUids="api_batches")
    assert status == 200 and [b["uid"] for b in listed["results"]] == [write["taskUid"], created["taskUid"]]
    assert listed["total"] == 2 and listed["limit"] == 20 and listed["next"] is None
    status, one = gw.get("/batches", indexUids="api_batches", limit="1", reverse="true")
    assert [b["uid"] for b in one["results"]] == [created["taskUid"]] and one["next"] == write["taskUid"]
    status, tasks = gw.get("/tasks", batchUids=str(write["taskUid"]))
    assert [t["uid"] for t in tasks["results"]] == [write["taskUid"]]
    assert gw.get("/batches", batchUids=str(created["taskUid"]), types="indexCreation")[1]["total"] == 1
    status, err = gw.get("/batches/99999999")
    assert (status, err["code"], err["message"]) == (404, "batch_not_found", "Batch `99999999` not found.")
    status, err = gw.get("/batches/x")
    assert (status, err["code"]) == (400, "invalid_batch_uids")
    status, err = gw.get("/batches", statuses="done")
    assert (status, err["code"]) == (400, "invalid_task_statuses")


def test_delete_tasks(cluster):
    gw = cluster["gateway"]
    status, created = gw.post("/indexes", {"uid": "api_taskdel", "shards": 1})
    assert gw.wait_task(created["taskUid"])["status"] == "succeeded"
    status, again = gw.post("/indexes", {"uid": "api_taskdel", "shards": 1})
    assert gw.wait_task(again["taskUid"])["status"] == "failed"
    status, task = gw.req("DELETE", "/tasks", indexUids="api_taskdel", statuses="failed",
                          beforeEnqueuedAt="2100-01-01T00:00:00Z")
    assert status == 200 and task["type"] == "taskDeletion"  # 200, not 202, as on one node
    done = gw.wait_task(task["taskUid"])
    assert done["status"] == "succeeded"
    # the filter as the client sent it, order and encoding kept, as a node says it
    assert done["details"] == {"matchedTasks": 1, "deletedTasks": 1, "originalFilter":
                               "?indexUids=api_taskdel&statuses=failed&beforeEnqueuedAt=2100-01-01T00%3A00%3A00Z"}
    assert gw.get(f"/tasks/{again['taskUid']}")[0] == 404
    assert gw.get(f"/tasks/{created['taskUid']}")[0] == 200
    # a task deleted right after it was enqueued, not yet done: it goes too, as on a node, which
    # processes the deletion after it
    status, write = gw.post("/indexes/api_taskdel/documents", [{"id": 1}])
    status, task = gw.req("DELETE", "/tasks", uids=str(write["taskUid"]))
    assert gw.wait_task(task["taskUid"])["details"]["deletedTasks"] == 1
    assert gw.get(f"/tasks/{write['taskUid']}")[0] == 404
    assert gw.get("/indexes/api_taskdel/documents/1")[0] == 200  # the write itself was applied
    assert again["taskUid"] not in [t["uid"] for t in gw.get("/tasks", indexUids="api_taskdel")[1]["results"]]
    status, err = gw.req("DELETE", "/tasks")
    assert (status, err["code"]) == (400, "missing_task_filters")


def test_single_shard_search_passes_the_node_answer_through(cluster):
    """With one shard there is nothing to merge: the node's answer is returned as it is, after
    the same validation as any search."""
    gw = cluster["gateway"]
    status, task = gw.post("/indexes", {"uid": "single", "primaryKey": "id", "shards": 1, "replicationFactor": 2})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    docs = [{"id": i, "title": f"lone shard {i}", "n": i % 7} for i in range(120)]
    status, task = gw.req("PATCH", "/indexes/single/settings", {"filterableAttributes": ["n"]})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, task = gw.post("/indexes/single/documents", docs)
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    topo = gw.get("/_miroir/topology")[1]
    node = next(i for i in topo["indexes"] if i["uid"] == "single")["placement"][0]["replicas"][0]["node"]
    body = {"q": "lone", "limit": 7, "offset": 3, "filter": "n = 2", "facets": ["n"]}
    status, via_gateway = gw.post("/indexes/single/search", body)
    assert status == 200
    status, direct = cluster["nodes"][node].post(f"/indexes/{storage_of(gw, 'single')}__s0/search", body)
    assert status == 200
    for key in ("hits", "estimatedTotalHits", "facetDistribution", "offset", "limit", "query"):
        assert via_gateway[key] == direct[key], key
    status, err = gw.post("/indexes/single/search", {"limit": -1})
    assert status == 400 and err["code"] == "invalid_search_limit"
