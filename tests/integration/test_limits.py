"""The gateway's caps answer with clear errors: connections past max_connections, clients too
slow to send a request, and fan-outs past request_timeout_ms. A second gateway with small caps
runs beside the cluster's own (gateways are stateless)."""
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import BUILD, HOST, Http, healthy, pid_of, wait_until

PORT = 27790
INDEX = "limits"


@pytest.fixture(scope="module")
def small_gateway(cluster):
    env = dict(cluster["env"], MIROIR_CONFIG=os.path.join(cluster["state"], "miroir.conf"),
               MIROIR_GATEWAY_LISTEN=f"{HOST}:{PORT}", MIROIR_MAX_CONNECTIONS="4", MIROIR_CONNECTION_TIMEOUT_S="2",
               MIROIR_REQUEST_TIMEOUT_MS="500", MIROIR_UPSTREAM_TIMEOUT_MS="5000")
    log = open(os.path.join(cluster["state"], "logs", "gateway-limits.log"), "wb")
    proc = subprocess.Popen([os.path.join(BUILD, "gateway", "miroir-gateway")], env=env, stdout=log, stderr=log)
    gw = Http(f"http://{HOST}:{PORT}")
    try:
        wait_until("the small gateway", lambda: healthy(gw), 60)
        status, task = cluster["gateway"].post(f"/indexes/{INDEX}/documents", [{"id": i, "t": "x"} for i in range(40)])
        assert cluster["gateway"].wait_task(task["taskUid"])["status"] == "succeeded"
        yield gw
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()



def test_connections_past_the_cap_get_a_503(small_gateway):
    early = Http(small_gateway.base)  # a kept-alive connection that came first
    assert early.get("/health")[0] == 200
    idle = [socket.create_connection((HOST, PORT)) for _ in range(3)]  # 4 open: the cap
    try:
        time.sleep(0.3)
        status, body = Http(small_gateway.base).get("/health")
        assert status == 503, body
        assert body["code"] == "miroir_too_many_connections" and body["type"] == "system"
        # the connections that came first keep working
        assert early.get("/health")[0] == 200
    finally:
        for s in idle:
            s.close()
    wait_until("a free connection", lambda: Http(small_gateway.base).get("/health")[0] == 200, 10)


def test_a_slow_client_is_cut_off(small_gateway):
    s = socket.create_connection((HOST, PORT))
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        s.settimeout(15)
        started = time.monotonic()
        assert s.recv(1024) == b""  # closed by the gateway
        assert time.monotonic() - started < 10
    finally:
        s.close()


def test_a_fan_out_past_the_request_timeout_is_a_504(cluster, small_gateway):
    pids = [pid_of(cluster, name) for name in ("node1", "node2", "node3")]
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        status, body = small_gateway.post(f"/indexes/{INDEX}/search", {"q": "x"})
        elapsed = time.monotonic() - started
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert status == 504, body
    assert body["code"] == "miroir_request_timeout" and set(body) == {"message", "code", "type", "link"}
    assert elapsed < 4, elapsed
    wait_until("searches again", lambda: small_gateway.post(f"/indexes/{INDEX}/search", {"q": "x"})[0] == 200, 30)
    wait_until("the cluster's gateway searches again",
               lambda: cluster["gateway"].post(f"/indexes/{INDEX}/search", {"q": "x"})[0] == 200, 30)
