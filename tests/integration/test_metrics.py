"""GET /metrics speaks Prometheus' text format: request counts and latency histograms per route,
upstream latency per node, node health, per-replica lag and applied offsets, DLQ counts."""
import os
import re

import requests
from confluent_kafka import Consumer, TopicPartition

from conftest import GATEWAY_PORT, HOST, NODE_KEY, storage_of, wait_until

LINE = re.compile(r'^([a-z_]+)(\{[^}]*\})? (\S+)$')


def scrape():
    r = requests.get(f"http://{HOST}:{GATEWAY_PORT}/metrics", timeout=30)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    series = {}
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        assert m, f"not a Prometheus sample: {line!r}"
        series[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return r.text, series


def test_metrics(cluster):
    gw = cluster["gateway"]
    status, task = gw.post("/indexes", {"uid": "metered", "primaryKey": "id", "shards": 2})
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    status, task = gw.post("/indexes/metered/documents", [{"id": i, "t": "metric"} for i in range(50)])
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    for _ in range(5):
        assert gw.post("/indexes/metered/search", {"q": "metric"})[0] == 200
    assert gw.post("/indexes/metered/search", {"limit": -1})[0] == 400
    assert gw.get("/no/such/route")[0] == 404

    text, series = scrape()
    assert NODE_KEY not in text
    ok = 'miroir_http_requests_total{method="POST",route="/indexes/*/search",code="2xx"}'
    assert series[ok] >= 5
    assert series['miroir_http_requests_total{method="POST",route="/indexes/*/search",code="4xx"}'] >= 1
    assert series['miroir_http_requests_total{method="any",route="/unmatched",code="4xx"}'] >= 1
    # a histogram's buckets are cumulative and end with the count
    buckets = [v for k, v in series.items()
               if k.startswith('miroir_http_request_duration_seconds_bucket{method="POST",route="/indexes/*/search"')]
    assert buckets == sorted(buckets) and buckets[-1] == \
        series['miroir_http_request_duration_seconds_count{method="POST",route="/indexes/*/search"}']
    assert sum(v for k, v in series.items() if k.startswith("miroir_upstream_duration_seconds_count")) >= 5
    for node in ("n1", "n2", "n3"):
        assert series[f'miroir_node_up{{node="{node}",state="active"}}'] == 1
    lags = {k: v for k, v in series.items() if k.startswith('miroir_replica_lag_records{index="metered"')}
    assert len(lags) == 2 * 2 and all(v == 0 for v in lags.values())  # S=2, RF=2, all applied
    ends = [v for k, v in series.items() if k.startswith('miroir_shard_end_offset{index="metered"')]
    assert len(ends) == 2 and sum(ends) >= 50
    # exactly Kafka's end offsets (asked for all shards in one request)
    consumer = Consumer({"bootstrap.servers": cluster["kafka"], "group.id": "metrics-test"})
    try:
        for s in range(2):
            lo, hi = consumer.get_watermark_offsets(TopicPartition(f"miroir.idx.{storage_of(gw, 'metered')}", s),
                                                    timeout=10)
            assert series[f'miroir_shard_end_offset{{index="metered",shard="{s}"}}'] == hi
    finally:
        consumer.close()
    assert series['miroir_dlq_records{index="metered"}'] == 0
    assert series['miroir_replicas{state="building"}'] == 0


def test_request_ids(cluster):
    """A request id follows a request: the client's own (if sane) or a new one, in the answer's
    X-Request-Id and in the gateway's log lines about it."""
    base = f"http://{HOST}:{GATEWAY_PORT}"
    r = requests.get(f"{base}/health", headers={"X-Request-Id": "trace-42.a_b"}, timeout=10)
    assert r.headers["X-Request-Id"] == "trace-42.a_b"
    ids = {requests.get(f"{base}/health", timeout=10).headers["X-Request-Id"] for _ in range(3)}
    assert len(ids) == 3 and all(ids)
    r = requests.get(f"{base}/health", headers={"X-Request-Id": "bad id\"with spaces"}, timeout=10)
    assert r.headers["X-Request-Id"] != "bad id\"with spaces"
    # the access log line carries it as a field of its own, with the route, status and error code
    requests.post(f"{base}/indexes/no-such-index/search", json={"q": ""}, headers={"X-Request-Id": "trace-43"},
                  timeout=10)
    log = os.path.join(cluster["state"], "logs", "gateway.log")

    def logged():
        with open(log, errors="replace") as f:
            return [line for line in f if "request_id=trace-43 " in line]
    lines = wait_until("the access log line", logged, 10)
    assert 'level=info comp=gateway request_id=trace-43 msg="POST /indexes/no-such-index/search -> 404' in lines[0]
    assert "index_not_found" in lines[0]
