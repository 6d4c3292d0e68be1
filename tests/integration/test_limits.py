"""The gateway's caps answer with clear errors: connections past max_connections, clients too
slow to send a request, bodies the budget can't hold, bytes that are not HTTP, and fan-outs past
request_timeout_ms. A second gateway with small caps
runs beside the cluster's own (gateways are stateless)."""
import json
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
               MIROIR_HEADER_TIMEOUT_MS="1500", MIROIR_BODY_MIN_RATE="1000", MIROIR_BODY_BUDGET_BYTES="1048576",
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



def served(at_most):
    """Kept-alive connections answered once each (they count against the cap), opened until the
    cap answers 503 or at_most are open."""
    socks = []
    for _ in range(at_most):
        s = socket.create_connection((HOST, PORT))
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(10)
        answer = s.recv(4096)
        if not answer.startswith(b"HTTP/1.1 200"):
            assert answer.startswith(b"HTTP/1.1 503"), answer
            s.close()
            break
        socks.append(s)
    return socks


def answer_of(s, timeout=10):
    """The status and JSON body of the answer on s, read until the gateway closes it."""
    s.settimeout(timeout)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body) if body else None


def post_head(path, length, body=b""):
    """A new connection that has sent a POST head declaring length bytes, and body of them."""
    s = socket.create_connection((HOST, PORT))
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Content-Length: {length}\r\n\r\n".encode() + body)
    return s


def test_connections_past_the_cap_get_a_503(small_gateway):
    early = Http(small_gateway.base)  # a kept-alive connection that came first
    assert early.get("/health")[0] == 200
    held = served(5)  # up to the cap of 4 (the fixture's own client may hold one)
    idle = [socket.create_connection((HOST, PORT)) for _ in range(50)]  # silent: they hold no slot
    try:
        # every connection past the cap gets its answer, however many come
        late = [socket.create_connection((HOST, PORT)) for _ in range(40)]
        for s in late:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        for s in late:
            status, body = answer_of(s)
            assert status == 503, body
            assert body["code"] == "miroir_too_many_connections" and body["type"] == "system"
            s.close()
        # the connections that came first keep working
        assert early.get("/health")[0] == 200
    finally:
        for s in held + idle:
            s.close()
    wait_until("a free connection", lambda: Http(small_gateway.base).get("/health")[0] == 200, 10)


def test_a_slow_head_gets_a_408(small_gateway):
    s = socket.create_connection((HOST, PORT))
    try:
        started = time.monotonic()
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\n":  # a byte at a time, never the blank line
            try:
                s.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.2)
            if time.monotonic() - started > 4:
                break
        status, body = answer_of(s)
        assert status == 408 and body["code"] == "miroir_request_too_slow", body
        assert time.monotonic() - started < 6
    finally:
        s.close()


def test_a_slow_next_head_on_a_kept_alive_connection_gets_a_408(small_gateway):
    s, = served(1)  # the cap test's connections are closed by now
    try:
        started = time.monotonic()
        for byte in b"GET /health HTTP/1.1\r\nX-Drip: ":
            try:
                s.sendall(bytes([byte]))
            except OSError:  # the gateway has answered and closed
                break
            time.sleep(0.1)
        status, body = answer_of(s)
        assert status == 408, body
        assert time.monotonic() - started < 8
    finally:
        s.close()


def test_a_slow_body_gets_a_408(small_gateway):
    s = post_head("/indexes/limits/search", 100000, b"{")
    try:
        started = time.monotonic()
        status = None
        while time.monotonic() - started < 8:
            try:
                s.sendall(b" ")
            except OSError:
                break
            time.sleep(0.5)
            s.settimeout(0.01)
            try:
                if s.recv(1, socket.MSG_PEEK):
                    break
            except (socket.timeout, BlockingIOError):
                pass
        status, body = answer_of(s)
        assert status == 408, body
    finally:
        s.close()


def test_bytes_that_are_not_http_get_a_400_at_once(small_gateway):
    s = socket.create_connection((HOST, PORT))
    try:
        s.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]))  # a TLS ClientHello
        started = time.monotonic()
        status, body = answer_of(s)
        assert status == 400 and body["code"] == "bad_request", body
        assert time.monotonic() - started < 2
    finally:
        s.close()


def test_a_control_character_in_the_path_is_a_400(small_gateway):
    status, body = small_gateway.get("/indexes/limits%00__s0/search")
    assert status == 400 and body["code"] == "bad_request", body


def test_a_refused_upload_is_answered_before_its_body(small_gateway):
    s = post_head("/indexes/limits/documents", 200 << 20)  # past max_body_bytes, and not one byte sent
    try:
        status, body = answer_of(s, timeout=5)
        assert status == 413, body  # past max_body_bytes
    finally:
        s.close()
    s = post_head("/indexes/limits/documents", 2 << 20)  # within max_body_bytes, past the 1 MiB budget
    try:
        status, body = answer_of(s, timeout=5)
        assert status == 503 and body["code"] == "miroir_too_many_uploads", body
    finally:
        s.close()


def test_a_truncated_body_is_a_400(small_gateway):
    s = post_head("/indexes/limits/search", 100, b'{"q":')
    try:
        s.shutdown(socket.SHUT_WR)
        status, body = answer_of(s)
        assert status == 400 and body["code"] == "bad_request", body
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
