"""The differential conformance cases: each runs unchanged against one plain Meilisearch node
holding the whole index and against the gateway (S=3, RF=2 over 3 nodes). Every case that may
differ, and why, is listed in ALLOWED below: the one place where differences are written down."""

INDEX = "conf"
SETTINGS = {
    "filterableAttributes": ["registry", "month", "version", "id"],
    "sortableAttributes": ["name", "month", "id"],
    "typoTolerance": {"minWordSizeForTypos": {"oneTypo": 4, "twoTypos": 8}},
    "searchableAttributes": ["name", "summary", "registry"],
}

S = f"/indexes/{INDEX}/search"


def search(name, **body):
    return (name, "POST", S, body, None)


def get_search(name, **params):
    return (name, "GET", S, None, params)


CASES = [
    # q, paging
    search("q-word", q="react"),
    search("q-two-words", q="http client"),
    search("q-typo", q="reqeusts"),
    search("q-typo-2", q="djnago rest"),
    search("q-prefix", q="tensorfl"),
    search("q-phrase", q='"command line"'),
    search("q-empty", q=""),
    search("q-absent"),
    search("q-no-match", q="zzqxwv"),
    search("offset-limit", q="python", offset=7, limit=9),
    search("offset-beyond", q="python", offset=5000),
    search("limit-zero", q="python", limit=0),
    search("page-mode", q="library", page=2, hitsPerPage=7),
    search("page-mode-last", q="", filter="registry = pypi", page=40, hitsPerPage=25),
    get_search("get-q-limit", q="django", limit="5"),
    get_search("get-page", q="vue", page="2", hitsPerPage="3"),
    # filters
    search("filter-string", q="", filter="registry = npm AND month >= 2024-01", limit=50),
    search("filter-array", q="", filter=[["registry = npm", "registry = pypi"], "month = 2023-07"], limit=50),
    search("filter-in", q="", filter="month IN [2022-01, 2022-02]", limit=50),
    search("filter-not", q="", filter="NOT registry = npm", limit=30),
    search("filter-numeric-range", q="", filter="id 1000 TO 5000", limit=40),
    search("filter-exists", q="tool", filter="version EXISTS"),
    search("filter-text-query", q="parser", filter="registry = pypi"),
    get_search("get-filter", q="", filter="registry = npm", limit="10"),
    # facets
    search("facets", q="", facets=["registry", "month"], limit=0),
    search("facets-filtered", q="", facets=["registry"], filter="month >= 2024-01", limit=0),
    search("facets-numeric-stats", q="", facets=["id"], limit=0),
    search("facets-text", q="react", facets=["registry"], limit=3),
    get_search("get-facets", q="", facets="registry,month", limit="0"),
    # sort
    search("sort-name-asc", q="", sort=["name:asc"], limit=30),
    search("sort-month-desc-name", q="", sort=["month:desc", "name:asc"], limit=30, offset=10),
    search("sort-with-query", q="react", sort=["month:asc"], limit=20),
    search("sort-id-desc-filter", q="", sort=["id:desc"], filter="registry = pypi", limit=15),
    get_search("get-sort", q="", sort="name:desc", limit="10"),
    # distinct
    search("distinct-month", q="", distinct="month", sort=["month:asc"], limit=20),
    search("distinct-registry-text", q="http", distinct="registry"),
    # attributes and formatting
    search("attributes-to-retrieve", q="flask", attributesToRetrieve=["id", "name", "version"]),
    search("crop", q="library for", attributesToCrop=["summary"], cropLength=5, limit=5),
    search("crop-marker", q="plugin", attributesToCrop=["summary:3"], cropMarker="[…]", limit=5),
    search("highlight", q="json", attributesToHighlight=["name", "summary"], limit=5),
    search("highlight-tags", q="json", attributesToHighlight=["*"], highlightPreTag="<b>", highlightPostTag="</b>",
           limit=5),
    search("matches-position", q="redis client", showMatchesPosition=True, limit=5),
    # ranking controls
    search("matching-all", q="python http client", matchingStrategy="all"),
    search("matching-last", q="python http client", matchingStrategy="last"),
    search("matching-frequency", q="python http client", matchingStrategy="frequency"),
    search("show-ranking-score", q="graphql", showRankingScore=True, limit=10),
    search("ranking-score-details", q="graphql", showRankingScoreDetails=True, limit=5),
    search("ranking-score-threshold", q="web framework", rankingScoreThreshold=0.8, limit=50),
    search("attributes-to-search-on", q="python", attributesToSearchOn=["name"], limit=20),
    search("locales", q="database", locales=["eng"], limit=10),
    # search errors, checked by the nodes or the gateway
    search("err-q-type", q=1),
    search("err-limit-type", limit="x"),
    search("err-offset-negative", offset=-1),
    search("err-page-zero", page=0),
    search("err-filter-syntax", filter="registry ="),
    search("err-filter-not-filterable", filter="summary = x"),
    search("err-facet-not-filterable", facets=["summary"]),
    search("err-sort-not-sortable", sort=["summary:asc"]),
    search("err-unknown-field", nonsense=True),
    search("err-matching-strategy", matchingStrategy="sometimes"),
    search("err-crop-length", q="x", cropLength=-5),
    get_search("err-get-limit", limit="x"),
    ("err-unknown-index", "POST", "/indexes/nope/search", {"q": "x"}, None),
    # facet search
    ("facet-search-query", "POST", f"/indexes/{INDEX}/facet-search", {"facetName": "month", "facetQuery": "2023"}, None),
    ("facet-search-all", "POST", f"/indexes/{INDEX}/facet-search", {"facetName": "registry"}, None),
    ("facet-search-with-q", "POST", f"/indexes/{INDEX}/facet-search",
     {"facetName": "month", "q": "django", "filter": "registry = pypi"}, None),
    ("err-facet-search-name", "POST", f"/indexes/{INDEX}/facet-search", {"facetName": "summary"}, None),
    ("err-facet-search-missing", "POST", f"/indexes/{INDEX}/facet-search", {"facetQuery": "x"}, None),
    # multi-search
    ("multi-plain", "POST", "/multi-search",
     {"queries": [{"indexUid": INDEX, "q": "react", "limit": 5}, {"indexUid": INDEX, "q": "", "facets": ["registry"],
                                                                   "limit": 0}]}, None),
    ("multi-federated", "POST", "/multi-search",
     {"federation": {"limit": 10, "offset": 3},
      "queries": [{"indexUid": INDEX, "q": "react router"},
                  {"indexUid": INDEX, "q": "django", "federationOptions": {"weight": 0.7}}]}, None),
    ("multi-federated-facets", "POST", "/multi-search",
     {"federation": {"limit": 5, "facetsByIndex": {INDEX: ["registry", "month"]}},
      "queries": [{"indexUid": INDEX, "q": "react"}]}, None),
    ("multi-federated-merge-facets", "POST", "/multi-search",
     {"federation": {"limit": 5, "facetsByIndex": {INDEX: ["registry"]}, "mergeFacets": {"maxValuesPerFacet": 10}},
      "queries": [{"indexUid": INDEX, "q": "", "filter": "month >= 2025-01"}]}, None),
    ("err-multi-index", "POST", "/multi-search", {"queries": [{"indexUid": INDEX}, {"indexUid": "nope"}]}, None),
    ("err-multi-federated-paging", "POST", "/multi-search",
     {"federation": {}, "queries": [{"indexUid": INDEX, "limit": 2}]}, None),
    # documents
    ("doc-get", "GET", f"/indexes/{INDEX}/documents/4400", None, None),
    ("doc-get-fields", "GET", f"/indexes/{INDEX}/documents/4400", None, {"fields": "name,version"}),
    ("err-doc-missing", "GET", f"/indexes/{INDEX}/documents/123456789", None, None),
    ("docs-fetch-filter", "POST", f"/indexes/{INDEX}/documents/fetch",
     {"filter": "registry = npm AND month = 2024-03", "fields": ["id", "name"], "limit": 500}, None),
    ("docs-fetch-ids", "POST", f"/indexes/{INDEX}/documents/fetch", {"ids": [110, 220, 330, 999999]}, None),
    ("docs-fetch-sort", "POST", f"/indexes/{INDEX}/documents/fetch",
     {"sort": ["name:desc"], "fields": ["name"], "limit": 25}, None),
    ("docs-browse-total", "GET", f"/indexes/{INDEX}/documents", None, {"limit": "0"}),
    ("docs-browse-filter", "GET", f"/indexes/{INDEX}/documents", None,
     {"filter": "month = 2021-05", "fields": "id", "limit": "1000"}),
    ("err-docs-limit", "GET", f"/indexes/{INDEX}/documents", None, {"limit": "-3"}),
    # settings, stats, index
    ("settings", "GET", f"/indexes/{INDEX}/settings", None, None),
    ("settings-filterable", "GET", f"/indexes/{INDEX}/settings/filterable-attributes", None, None),
    ("settings-typo", "GET", f"/indexes/{INDEX}/settings/typo-tolerance", None, None),
    ("settings-pagination", "GET", f"/indexes/{INDEX}/settings/pagination", None, None),
    ("stats", "GET", f"/indexes/{INDEX}/stats", None, None),
    ("index", "GET", f"/indexes/{INDEX}", None, None),
    ("err-index-missing", "GET", "/indexes/nope", None, None),
    ("err-settings-value", "PATCH", f"/indexes/{INDEX}/settings", {"sortableAttributes": "name"}, None),
    ("err-settings-unknown", "PATCH", f"/indexes/{INDEX}/settings", {"sortOfAttributes": ["name"]}, None),
    ("health", "GET", "/health", None, None),
]

# Fields that can't be equal, in every answer: timings, and what each side numbers on its own.
VOLATILE = {"processingTimeMs", "createdAt", "updatedAt", "enqueuedAt", "startedAt", "finishedAt", "duration",
            "taskUid", "uid", "batchUid", "requestUid"}

# Browsing without sort: one node lists documents in its internal order (insertion history);
# the gateway lists them shard by shard, in an order that is stable but not the node's. These
# cases compare the documents, totals and paging, not the order.
UNORDERED = {"docs-fetch-filter", "docs-fetch-ids", "docs-browse-filter"}

# Distinct over tied values: which document stands for a value that several tied documents share
# depends on insertion history, like any tie. These compare the sequence of (sort values, score).
DISTINCT_TIES = {"distinct-month", "distinct-registry-text"}

# Cases allowed to differ, and why. Anything not listed here must be equal.
ALLOWED = {
    "stats": "rawDocumentDbSize and avgDocumentSize are storage sizes: S shard indexes store the same documents in "
             "other pages than one index. numberOfDocuments, fieldDistribution and isIndexing must still be equal "
             "(test_stats_agree_where_they_must).",
    "health": "the gateway adds the cluster colour and the degraded shards to Meilisearch's {\"status\"}.",
    "multi-federated": "estimatedTotalHits: one node counts the union of the documents all queries match; the gateway "
                       "adds the queries' totals, less the duplicates it sees in the hits it fetched. The hits, their "
                       "weighted scores and their order (up to ties) must still be equal.",
    "multi-federated-merge-facets": "estimatedTotalHits: a node's federated total is not capped at maxTotalHits "
                                    "(3848 here), while each shard caps its own count, so the gateway's sum is capped "
                                    "at maxTotalHits. The merged facets must still be equal.",
}

# Text queries where the shards' own word dictionaries may derive other typos or prefixes than
# one big dictionary (docs/search.md). On the sample none differs today; a quarter may.
DICTIONARY_SENSITIVE = {"q-typo", "q-typo-2", "q-prefix", "matching-frequency", "ranking-score-threshold",
                        "facet-search-with-q", "matching-last", "crop"}
