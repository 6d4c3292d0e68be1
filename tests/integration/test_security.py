"""Keys and tenant tokens on a cluster with a master key: Meilisearch's key model, enforced by the
gateway for every shard, checked against a real Meilisearch where they must agree."""
import datetime
import glob
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse

import meilisearch
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from conftest import BUILD, HOST, MEILI, NODE_KEY, Http, healthy, running_cluster, wait_until

MASTER = "secured-master-key-for-tests-0123456789"
KAFKA, GATEWAY, NODES = 23092, 23700, 23701
PLAIN_NODE = 23710  # a plain Meilisearch with the same master key, to compare key values with
TENANTS = ("acme", "globex", "initech")


def derived(uid, master=MASTER):
    return hmac.new(master.encode(), uid.encode(), hashlib.sha256).hexdigest()


@pytest.fixture(scope="module")
def secured():
    with running_cluster("miroir-secured-", KAFKA, GATEWAY, NODES, master_key=MASTER) as c:
        master = Http(c["gateway_url"], MASTER)
        status, task = master.post("/indexes", {"uid": "secure", "primaryKey": "id", "shards": 4})
        assert status == 202, task
        docs = [{"id": i, "tenant": TENANTS[i % 3], "title": f"report {i}"} for i in range(90)]
        status, task = master.req("PATCH", "/indexes/secure/settings", {"filterableAttributes": ["tenant"]})
        assert status == 202, task
        assert master.wait_task(task["taskUid"])["status"] == "succeeded"
        status, task = master.post("/indexes/secure/documents", docs)
        assert master.wait_task(task["taskUid"])["status"] == "succeeded"
        status, task = master.post("/indexes/other/documents", [{"id": 1, "title": "not yours"}])
        assert master.wait_task(task["taskUid"])["status"] == "succeeded"
        c["master"] = master
        yield c


def keys_of(c):
    status, page = c["master"].get("/keys", limit=100)
    assert status == 200, page
    return {k["name"]: k for k in page["results"]}


def new_key(c, **body):
    body.setdefault("expiresAt", None)
    status, key = c["master"].post("/keys", body)
    assert status == 201, key
    return key


def error_of(answer, status, code):
    got_status, body = answer
    assert got_status == status, body
    assert body["code"] == code, body
    assert set(body) == {"message", "code", "type", "link"}, body
    return body


def test_no_key_is_401_and_a_wrong_key_is_403(secured):
    anonymous = Http(secured["gateway_url"])
    error_of(anonymous.get("/indexes"), 401, "missing_authorization_header")
    error_of(anonymous.post("/indexes/secure/search", {"q": ""}), 401, "missing_authorization_header")
    wrong = Http(secured["gateway_url"], "not-a-key")
    body = error_of(wrong.get("/indexes"), 403, "invalid_api_key")
    assert "not-a-key" not in body["message"]
    # the node key is the cluster's, not the API's
    error_of(Http(secured["gateway_url"], NODE_KEY).get("/indexes"), 403, "invalid_api_key")
    # public: health for load balancers, the console page (it holds no data)
    assert anonymous.get("/health")[0] == 200
    error_of(anonymous.get("/health", detail="true"), 401, "missing_authorization_header")  # names indexes
    shards = secured["master"].get("/health", detail="true")[1]["shards"]
    assert len([s for s in shards if s["index"] == "secure"]) == 4
    r = anonymous.s.get(secured["gateway_url"] + "/_miroir/")
    assert r.status_code == 200 and "text/html" in r.headers["Content-Type"]
    error_of(anonymous.get("/_miroir/topology"), 401, "missing_authorization_header")


def test_default_keys_are_derived_as_meilisearch_derives_them(secured):
    keys = keys_of(secured)
    assert {"Default Search API Key", "Default Admin API Key", "Default Read-Only Admin API Key"} <= set(keys)
    for k in keys.values():
        assert k["key"] == derived(k["uid"]), k
    assert keys["Default Search API Key"]["actions"] == ["search"]
    assert keys["Default Admin API Key"]["actions"] == ["*"]

    # A real Meilisearch with the same master key gives a key of the same uid the same value.
    data = tempfile.mkdtemp(prefix="miroir-plain-")
    proc = subprocess.Popen([MEILI, "--http-addr", f"{HOST}:{PLAIN_NODE}", "--master-key", MASTER, "--db-path",
                             os.path.join(data, "db"), "--no-analytics"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        plain = Http(f"http://{HOST}:{PLAIN_NODE}", MASTER)
        wait_until("plain node", lambda: healthy(plain), 30)
        body = {"uid": "0b6d5c2e-8a39-4a8f-9d59-3d8f1d1c2a77", "actions": ["search", "documents.get"],
                "indexes": ["secure"], "expiresAt": None, "name": "same everywhere"}
        s1, on_node = plain.post("/keys", body)
        s2, on_gateway = secured["master"].post("/keys", body)
        assert (s1, s2) == (201, 201), (on_node, on_gateway)
        assert on_gateway["key"] == on_node["key"]
        for field in ("uid", "actions", "indexes", "expiresAt", "name", "description"):
            assert on_gateway[field] == on_node[field], field
        # and the same refusals, with the same codes
        for bad, code in (({"actions": ["searc"], "indexes": ["x"], "expiresAt": None}, "invalid_api_key_actions"),
                          ({"actions": ["search"], "indexes": ["x"]}, "missing_api_key_expires_at"),
                          ({"indexes": ["x"], "expiresAt": None}, "missing_api_key_actions"),
                          ({"actions": ["search"], "expiresAt": None}, "missing_api_key_indexes"),
                          ({"actions": ["search"], "indexes": ["m*v"], "expiresAt": None}, "invalid_api_key_indexes"),
                          ({"actions": ["search"], "indexes": ["x"], "expiresAt": "2001-01-01"},
                           "invalid_api_key_expires_at"),
                          ({"uid": "bad", "actions": ["search"], "indexes": ["x"], "expiresAt": None},
                           "invalid_api_key_uid"),
                          ({"actions": ["search"], "indexes": ["x"], "expiresAt": None, "foo": 1}, "bad_request"),
                          (body, "api_key_already_exists")):
            (ns, nb), (gs, gb) = plain.post("/keys", bad), secured["master"].post("/keys", bad)
            assert (gs, gb["code"], gb["type"]) == (ns, nb["code"], nb["type"]) == (gs, code, gb["type"]), (nb, gb)
        for patch, code in (({"actions": ["*"]}, "immutable_api_key_actions"),
                            ({"indexes": ["*"]}, "immutable_api_key_indexes"),
                            ({"expiresAt": None}, "immutable_api_key_expires_at")):
            (ns, nb) = plain.req("PATCH", f"/keys/{body['uid']}", patch)
            (gs, gb) = secured["master"].req("PATCH", f"/keys/{body['uid']}", patch)
            assert (gs, gb["code"]) == (ns, nb["code"]) == (400, code), (nb, gb)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)
    secured["master"].req("DELETE", "/keys/0b6d5c2e-8a39-4a8f-9d59-3d8f1d1c2a77")



def test_key_lifecycle(secured):
    master = secured["master"]
    key = new_key(secured, actions=["search"], indexes=["sec*"], name="front", description="the shop")
    assert key["key"] == derived(key["uid"])
    assert master.get(f"/keys/{key['uid']}") == (200, key)
    assert master.get(f"/keys/{key['key']}")[1]["uid"] == key["uid"]
    status, renamed = master.req("PATCH", f"/keys/{key['uid']}", {"name": "storefront"})
    assert status == 200 and renamed["name"] == "storefront" and renamed["description"] == "the shop"
    # the newest key comes first, as on Meilisearch
    status, page = master.get("/keys", limit=1)
    assert status == 200 and page["results"][0]["uid"] == key["uid"] and page["limit"] == 1
    error_of(master.get("/keys", limit="x"), 400, "invalid_api_key_limit")

    user = Http(secured["gateway_url"], key["key"])
    assert user.post("/indexes/secure/search", {"q": "report"})[0] == 200
    assert master.req("DELETE", f"/keys/{key['uid']}")[0] == 204
    error_of(user.post("/indexes/secure/search", {"q": "report"}), 403, "invalid_api_key")
    error_of(master.get(f"/keys/{key['uid']}"), 404, "api_key_not_found")
    error_of(master.req("DELETE", f"/keys/{key['uid']}"), 404, "api_key_not_found")


def test_actions_and_indexes_are_enforced(secured):
    keys = keys_of(secured)
    search = Http(secured["gateway_url"], keys["Default Search API Key"]["key"])
    read_only = Http(secured["gateway_url"], keys["Default Read-Only Admin API Key"]["key"])
    admin = Http(secured["gateway_url"], keys["Default Admin API Key"]["key"])

    assert search.post("/indexes/secure/search", {"q": ""})[0] == 200
    error_of(search.post("/indexes/secure/documents", [{"id": 1000}]), 403, "invalid_api_key")
    # a key that may add documents but not create indexes can't create one by writing to it
    writer = Http(secured["gateway_url"], new_key(secured, actions=["documents.add"], indexes=["*"])["key"])
    # (as on one node, the write is a task that fails, and no index appears)
    status, task = writer.post("/indexes/not-created/documents", [{"id": 1}])
    assert status == 202, task
    done = secured["master"].wait_task(task["taskUid"])
    assert (done["status"], done["error"]["code"]) == ("failed", "index_not_found"), done
    error_of(secured["master"].get("/indexes/not-created"), 404, "index_not_found")
    assert writer.post("/indexes/secure/documents", [{"id": 1001, "tenant": "zeta", "title": "x"}])[0] == 202
    error_of(search.get("/indexes/secure/settings"), 403, "invalid_api_key")
    error_of(search.get("/keys"), 403, "invalid_api_key")
    assert read_only.get("/indexes/secure/settings")[0] == 200
    assert read_only.get("/keys")[0] == 200
    assert read_only.get("/_miroir/topology")[0] == 200
    error_of(read_only.req("PATCH", "/indexes/secure/settings", {"searchableAttributes": ["title"]}), 403,
             "invalid_api_key")
    # membership changes need "*" (the admin key or the master key)
    error_of(read_only.post("/_miroir/nodes", {"id": "x"}), 403, "invalid_api_key")
    assert admin.post("/_miroir/nodes", {"id": "bad id!"})[1]["code"] == "miroir_invalid_node"

    narrow = Http(secured["gateway_url"], new_key(secured, actions=["*"], indexes=["sec*"])["key"])
    assert narrow.get("/indexes/secure")[0] == 200
    body = error_of(narrow.get("/indexes/other"), 403, "invalid_api_key")
    assert "sec*" in body["message"]
    # it can't learn whether an index it may not see exists
    error_of(narrow.get("/indexes/nonexistent"), 403, "invalid_api_key")
    assert narrow.get("/indexes/security-missing")[1]["code"] == "index_not_found"
    assert [i["uid"] for i in narrow.get("/indexes")[1]["results"]] == ["secure"]
    assert list(narrow.get("/stats")[1]["indexes"]) == ["secure"]
    tasks = narrow.get("/tasks", limit=1000)[1]["results"]
    assert tasks and {t["indexUid"] for t in tasks} == {"secure"}
    other_task = next(t for t in secured["master"].get("/tasks", limit=1000)[1]["results"] if t["indexUid"] == "other")
    error_of(narrow.get(f"/tasks/{other_task['uid']}"), 404, "task_not_found")
    error_of(narrow.post("/multi-search", {"queries": [{"indexUid": "secure"}, {"indexUid": "other"}]}), 403,
             "invalid_api_key")
    error_of(narrow.post("/indexes", {"uid": "other2"}), 403, "invalid_api_key")
    error_of(narrow.post("/swap-indexes", [{"indexes": ["secure", "other"]}]), 403, "invalid_api_key")
    # the shards' own indexes are not reachable through the gateway
    error_of(secured["master"].post("/indexes/secure__s0/search", {"q": ""}), 404, "index_not_found")


def test_a_key_expires(secured):
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 4))
    key = new_key(secured, actions=["search"], indexes=["*"], expiresAt=soon)
    user = Http(secured["gateway_url"], key["key"])
    assert user.post("/indexes/secure/search", {"q": ""})[0] == 200
    wait_until("the key to expire", lambda: user.post("/indexes/secure/search", {"q": ""})[0] == 403, 15)


def tenant_ids(answer):
    status, body = answer
    assert status == 200, body
    return {h["tenant"] for h in body["hits"]}, body


def test_tenant_tokens_filter_every_shard(secured):
    key = keys_of(secured)["Default Search API Key"]
    client = meilisearch.Client(secured["gateway_url"], key["key"])
    token = client.generate_tenant_token(key["uid"], {"secure": {"filter": "tenant = acme"}}, api_key=key["key"])
    tenant = Http(secured["gateway_url"], token)
    seen, body = tenant_ids(tenant.post("/indexes/secure/search", {"q": "", "limit": 100}))
    assert seen == {"acme"} and body["estimatedTotalHits"] == 30  # 90 documents over 4 shards, a third each
    # the token's filter is ANDed with the query's, whatever the query's filter says
    seen, body = tenant_ids(tenant.post("/indexes/secure/search", {"q": "", "filter": "tenant = globex"}))
    assert body["estimatedTotalHits"] == 0
    # a filter that tries to close the token's parenthesis is refused, not joined
    error_of(tenant.post("/indexes/secure/search", {"q": "", "filter": "tenant = globex) OR (tenant = initech"}),
             400, "invalid_search_filter")
    seen, body = tenant_ids(tenant.post("/indexes/secure/search", {"q": "", "limit": 100,
                                                                   "filter": [["tenant = globex", "tenant = acme"]]}))
    assert seen == {"acme"} and body["estimatedTotalHits"] == 30
    status, body = tenant.get("/indexes/secure/search", q="", limit=100)
    assert status == 200 and {h["tenant"] for h in body["hits"]} == {"acme"}
    status, body = tenant.post("/multi-search", {"queries": [{"indexUid": "secure", "q": "", "limit": 100}]})
    assert status == 200 and {h["tenant"] for h in body["results"][0]["hits"]} == {"acme"}
    # the official client searches with it unchanged
    via_sdk = meilisearch.Client(secured["gateway_url"], token).index("secure").search("", {"limit": 100})
    assert {h["tenant"] for h in via_sdk["hits"]} == {"acme"}

    body = error_of(tenant.post("/indexes/other/search", {"q": ""}), 403, "invalid_api_key")
    assert "tenant token" in body["message"] and 'authorized indexes are ["secure"]' in body["message"]
    error_of(tenant.get("/indexes/secure/documents"), 403, "invalid_api_key")
    error_of(tenant.post("/indexes/secure/documents", [{"id": 999, "tenant": "acme"}]), 403, "invalid_api_key")


def test_tenant_tokens_filter_similar_documents(secured):
    """A similar query is a search: the token's filter holds on the document's shard and on every
    other, where the gateway searches by the document's vector."""
    master = secured["master"]
    status, task = master.post("/indexes", {"uid": "secure_vectors", "primaryKey": "id", "shards": 4})
    assert master.wait_task(task["taskUid"])["status"] == "succeeded"
    settings = {"embedders": {"v": {"source": "userProvided", "dimensions": 3}}, "filterableAttributes": ["tenant"]}
    status, task = master.req("PATCH", "/indexes/secure_vectors/settings", settings)
    assert master.wait_task(task["taskUid"])["status"] == "succeeded", task
    docs = [{"id": i, "tenant": TENANTS[i % 3], "_vectors": {"v": [1.0, (i % 7) / 7.0, (i % 5) / 5.0]}}
            for i in range(60)]
    status, task = master.post("/indexes/secure_vectors/documents", docs)
    assert master.wait_task(task["taskUid"])["status"] == "succeeded"
    key = keys_of(secured)["Default Search API Key"]
    client = meilisearch.Client(secured["gateway_url"], key["key"])
    token = client.generate_tenant_token(key["uid"], {"secure_vectors": {"filter": "tenant = acme"}},
                                         api_key=key["key"])
    tenant = Http(secured["gateway_url"], token)
    seen, body = tenant_ids(tenant.post("/indexes/secure_vectors/similar", {"id": 1, "embedder": "v", "limit": 60}))
    assert seen == {"acme"} and body["estimatedTotalHits"] == 20 and len(body["hits"]) == 20
    seen, body = tenant_ids(tenant.get("/indexes/secure_vectors/similar", id="0", embedder="v", limit="60"))
    assert seen == {"acme"} and body["estimatedTotalHits"] == 19  # the document itself is left out
    error_of(tenant.post("/indexes/secure/similar", {"id": 1, "embedder": "v"}), 403, "invalid_api_key")


def test_bad_tenant_tokens_are_refused(secured):
    keys = keys_of(secured)
    search_key, read_only = keys["Default Search API Key"], keys["Default Read-Only Admin API Key"]
    client = meilisearch.Client(secured["gateway_url"], search_key["key"])
    rules = {"secure": None}
    expired = client.generate_tenant_token(search_key["uid"], rules, api_key=search_key["key"],
                                           expires_at=_soon())
    time.sleep(2.5)
    body = error_of(Http(secured["gateway_url"], expired).post("/indexes/secure/search", {"q": ""}), 403,
                    "invalid_api_key")
    assert "expired" in body["message"]
    forged = client.generate_tenant_token(search_key["uid"], rules, api_key="x" * 64)
    error_of(Http(secured["gateway_url"], forged).post("/indexes/secure/search", {"q": ""}), 403, "invalid_api_key")
    # signed with a key that may not search
    no_search = client.generate_tenant_token(read_only["uid"], rules, api_key=read_only["key"])
    error_of(Http(secured["gateway_url"], no_search).post("/indexes/secure/search", {"q": ""}), 403, "invalid_api_key")
    # alg "none" and garbage
    for junk in ("eyJhbGciOiJub25lIn0.eyJzZWFyY2hSdWxlcyI6WyIqIl0sImFwaUtleVVpZCI6IngifQ.", "a.b.c", "..", "x.y"):
        error_of(Http(secured["gateway_url"], junk).post("/indexes/secure/search", {"q": ""}), 403, "invalid_api_key")
    # a deleted key's tokens die with it
    key = new_key(secured, actions=["search"], indexes=["*"])
    token = client.generate_tenant_token(key["uid"], ["*"], api_key=key["key"])
    assert Http(secured["gateway_url"], token).post("/indexes/secure/search", {"q": ""})[0] == 200
    secured["master"].req("DELETE", f"/keys/{key['uid']}")
    error_of(Http(secured["gateway_url"], token).post("/indexes/secure/search", {"q": ""}), 403, "invalid_api_key")


def _soon():
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1.5)


def test_miroirctl_needs_the_key(secured):
    ctl = os.path.join(BUILD, "rebalancer", "miroirctl")
    env = dict(os.environ, MIROIR_GATEWAY=secured["gateway_url"])
    env.pop("MIROIR_API_KEY", None)
    refused = subprocess.run([ctl, "status"], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "missing_authorization_header" in refused.stdout + refused.stderr
    ok = subprocess.run([ctl, "--key", MASTER, "status"], env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "secure" in ok.stdout


def test_no_secret_in_logs_or_metrics(secured):
    keys = keys_of(secured)
    secrets = [MASTER, NODE_KEY] + [k["key"] for k in keys.values()]
    status, metrics = secured["master"].req("GET", "/metrics")
    text = secured["master"].s.get(secured["gateway_url"] + "/metrics").text
    assert status == 200 or text
    for s in secrets:
        assert s not in text
    logs = glob.glob(os.path.join(secured["state"], "logs", "*"))
    assert logs
    for path in logs:
        if os.path.basename(path).startswith(("node", "kafka")):
            continue  # not ours: Meilisearch and Kafka logs
        with open(path, errors="replace") as f:
            content = f.read()
        for s in secrets:
            assert s not in content, f"a secret in {path}"
    # nor in the cluster's metadata: key records carry no value
    consumer = Consumer({"bootstrap.servers": secured["kafka"], "group.id": "security-test",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition("miroir.meta", 0, OFFSET_BEGINNING)])
    records = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                if records:
                    break
                continue
            if not msg.error():
                records.append((msg.key() or b"") + (msg.value() or b""))
    finally:
        consumer.close()
    assert any(r.startswith(b"key/") for r in records)
    for r in records:
        for s in secrets:
            assert s.encode() not in r


def test_the_console_asks_for_a_key(secured):
    from playwright.sync_api import sync_playwright

    from test_console import CHROMIUM, FLAGS
    admin = keys_of(secured)["Default Admin API Key"]["key"]
    topo = secured["master"].get("/_miroir/topology")[1]
    replicas = sum(len(s["replicas"]) for i in topo["indexes"] if i["uid"] == "secure" for s in i["placement"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(secured["gateway_url"] + "/_miroir/")
            wait_until("the refusal", lambda: "Authorization header is missing" in page.inner_text("#error"), 15)
            assert page.locator("table[data-index]").count() == 0 and page.locator("#nodes tr").count() == 0
            # a key in the fragment moves to the tab's session storage and leaves the URL (a new
            # tab: a fragment change alone would not load the page again)
            page = browser.new_page()
            page.goto(secured["gateway_url"] + f"/_miroir/#key={admin}&index=secure&q=report")
            wait_until("the map", lambda: page.locator('table[data-index="secure"] td[data-state="ready"]').count()
                       == replicas, 15)
            wait_until("the search", lambda: "results in secure" in page.inner_text("#summary"), 15)
            assert admin not in page.url
            assert page.input_value("#key") == admin
        finally:
            browser.close()


def test_keys_need_a_master_key(cluster):
    """On a gateway without a master key the API is open, but there are no keys to manage."""
    error_of(cluster["gateway"].get("/keys"), 401, "missing_master_key")
    error_of(cluster["gateway"].post("/keys", {"actions": ["*"], "indexes": ["*"], "expiresAt": None}), 401,
             "missing_master_key")


def test_malformed_requests_about_keys_and_tokens(secured):
    master = secured["master"]
    error_of(master.req("POST", "/keys", raw=b"{nope"), 400, "malformed_payload")
    error_of(master.req("POST", "/keys", raw=b""), 400, "missing_payload")
    key = keys_of(secured)["Default Search API Key"]
    error_of(master.req("PATCH", f"/keys/{key['uid']}", {"color": "red"}), 400, "bad_request")
    error_of(master.req("PATCH", "/keys/00000000-0000-4000-8000-000000000000", {"name": "x"}), 404,
             "api_key_not_found")

    def token(claims, secret=key["key"]):
        import base64
        import json as js

        def b64(b):
            return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
        head, body = b64(b'{"alg":"HS256","typ":"JWT"}'), b64(js.dumps(claims).encode())
        sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{b64(sig)}"

    cases = {
        "unknown key": {"apiKeyUid": "00000000-0000-4000-8000-000000000000", "searchRules": ["*"]},
        "no apiKeyUid": {"searchRules": ["*"]},
        "no searchRules": {"apiKeyUid": key["uid"]},
        # a bare string where {"filter": …} belongs must not grant the index unfiltered
        "rule not an object": {"apiKeyUid": key["uid"], "searchRules": {"secure": "tenant = acme"}},
        "exp not a number": {"apiKeyUid": key["uid"], "searchRules": ["*"], "exp": "tomorrow"},
    }
    for what, claims in cases.items():
        body = error_of(Http(secured["gateway_url"], token(claims)).post("/indexes/secure/search", {"q": ""}), 403,
                        "invalid_api_key")
        assert key["key"] not in body["message"], what
    # a rule whose filter is not a filter makes the token invalid, not a way around the rule
    bad_filter = token({"apiKeyUid": key["uid"], "searchRules": {"secure": {"filter": 3}}})
    error_of(Http(secured["gateway_url"], bad_filter).post("/indexes/secure/search", {"q": ""}), 403,
             "invalid_api_key")


def test_a_wrong_key_is_refused_before_the_body(secured):
    """A refused upload costs the gateway nothing: the answer comes on the head alone."""
    url = urllib.parse.urlsplit(secured["gateway_url"])
    s = socket.create_connection((url.hostname, url.port))
    try:
        s.sendall(b"POST /indexes/secure/documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 94371840\r\n\r\n")  # not one body byte
        s.settimeout(5)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 403"), data
        assert json.loads(body)["code"] == "invalid_api_key"
    finally:
        s.close()


def test_only_keys_with_every_action_see_where_the_nodes_are(secured):
    keys = keys_of(secured)
    url = secured["gateway_url"]
    read_only = Http(url, keys["Default Read-Only Admin API Key"]["key"])
    one_index_stats = Http(url, new_key(secured, actions=["stats.get"], indexes=["secure"])["key"])
    for who in (read_only, one_index_stats):
        for path, field in (("/_miroir/topology", "nodes"), ("/_miroir/nodes", "results")):
            status, body = who.get(path)
            assert status == 200, body
            assert body[field] and all("id" in n and "url" not in n for n in body[field]), body
            assert "http://" not in json.dumps(body), body
    for who in (Http(url, keys["Default Admin API Key"]["key"]), secured["master"]):
        nodes = who.get("/_miroir/nodes")[1]["results"]
        assert nodes and all(n["url"].startswith("http://") for n in nodes), nodes


def test_node_errors_name_the_clients_index(secured):
    master = secured["master"]
    storage = next(i["storage"] for i in master.get("/_miroir/topology")[1]["indexes"] if i["uid"] == "secure")
    answers = [master.post("/indexes/secure/search", {"filter": "title = x"}),
               master.post("/indexes/secure/search", {"sort": ["title:asc"]}),
               master.post("/indexes/secure/facet-search", {"facetName": "title"}),
               master.req("PATCH", "/indexes/secure/settings", {"rankingRules": ["bogus"]}),
               master.post("/indexes/secure/documents/delete", {"filter": "title = x"})]
    status, task = answers[-1]
    if status == 202:  # the node finds the attribute unfilterable when the deletion runs
        done = master.wait_task(task["taskUid"])
        assert done["status"] == "failed", done
        answers[-1] = (400, done["error"])
    for status, body in answers:
        assert status == 400, body
        for internal in {"__s", storage, "miroir-settings-check"} - {"secure"}:
            assert internal not in body["message"], body
        assert "Index `" not in body["message"] or "Index `secure`:" in body["message"], body
    # the nodes do name the index in these: the renaming is what is checked
    assert sum("Index `secure`:" in body["message"] for _, body in answers) >= 3
