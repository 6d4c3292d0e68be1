"""Hostile and careless clients all at once, while a well-behaved one works: a flood of idle
sockets past max_connections, heads dripped a byte at a time, huge uploads with a wrong key,
bytes that are not HTTP, control characters in paths, oversized heads, truncated bodies and
pipelined requests. Every search and acknowledged write of the good client must succeed, and
each kind of hostile client must get its own clear answer. Bounded in time; runs under ASan."""
import json
import os
import resource
import select
import socket
import threading
import time

import pytest

from conftest import HOST, Http, healthy, pid_of, running_cluster

MASTER = "hostile-master-key-for-tests-0123456789"
KAFKA, GATEWAY, NODES = 24092, 24700, 24701
INDEX = "hostile"
LOAD_S = 20
FLOOD = 300          # idle sockets held open, past max_connections
MAX_CONNECTIONS = 32
DRIPS = 20
UPLOADERS = 3
UPLOAD_BYTES = 90 << 20


@pytest.fixture(scope="module")
def hostile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    extra = (f"max_connections = {MAX_CONNECTIONS}\nheader_timeout_ms = 2000\nbody_min_rate = 65536\n"
             "body_budget_bytes = 33554432\n")
    try:
        with running_cluster("miroir-hostile-", KAFKA, GATEWAY, NODES, master_key=MASTER, extra=extra) as c:
            master = Http(c["gateway_url"], MASTER)
            status, task = master.post("/indexes", {"uid": INDEX, "primaryKey": "id"})
            assert status == 202, task
            assert master.wait_task(task["taskUid"])["status"] == "succeeded"
            c["master"] = master
            yield c
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def status_of(data):
    """The status of the first answer in data, or 0 if there is none."""
    if not data.startswith(b"HTTP/1."):
        return 0
    return int(data.split(b" ", 2)[1])


def read_answer(s, timeout):
    """What the gateway sends on s until it closes or timeout passes."""
    s.settimeout(timeout)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


class Hostile:
    def __init__(self):
        self.stop = threading.Event()
        self.seen = {}  # kind -> {status: count}
        self.lock = threading.Lock()

    def saw(self, kind, status):
        with self.lock:
            per = self.seen.setdefault(kind, {})
            per[status] = per.get(status, 0) + 1

    def flood(self):
        socks = []
        try:
            while not self.stop.is_set() and len(socks) < FLOOD:
                socks.append(socket.create_connection((HOST, GATEWAY)))
            self.saw("flood", len(socks))
            self.stop.wait()
        finally:
            for s in socks:
                s.close()

    def drips(self):
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Drip: " + b"y" * 200
        conns = {}

        def reopen(i):
            conns[i] = [socket.create_connection((HOST, GATEWAY)), 0]

        for i in range(DRIPS):
            reopen(i)
        try:
            while not self.stop.is_set():
                for i, (s, sent) in list(conns.items()):
                    readable, _, _ = select.select([s], [], [], 0)
                    if readable:  # the gateway answered: it must be a 408, and it closes
                        self.saw("drip", status_of(read_answer(s, 2)))
                        s.close()
                        reopen(i)
                        continue
                    try:
                        s.sendall(head[sent:sent + 1])
                        conns[i][1] = min(sent + 1, len(head) - 1)
                    except OSError:
                        self.saw("drip", status_of(read_answer(s, 2)))
                        s.close()
                        reopen(i)
                self.stop.wait(0.5)
        finally:
            for s, _ in conns.values():
                s.close()

    def wrong_key_uploads(self):
        chunk = b"[" + b" " * ((1 << 20) - 1)
        while not self.stop.is_set():
            s = socket.create_connection((HOST, GATEWAY))
            try:
                s.sendall(f"POST /indexes/{INDEX}/documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {UPLOAD_BYTES}\r\n\r\n".encode())
                sent = 0
                while sent < UPLOAD_BYTES and not select.select([s], [], [], 0)[0]:
                    s.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass
            self.saw("wrong-key upload", status_of(read_answer(s, 5)))
            s.close()

    def malformed(self):
        cases = [
            ("not http", bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])),
            ("nul in path", f"GET /indexes/{INDEX}%00__s0/search HTTP/1.1\r\nHost: x\r\n\r\n".encode()),
            ("huge head", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"z" * 20000 + b"\r\n\r\n"),
            ("truncated body", f"POST /indexes/{INDEX}/search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {MASTER}"
                               f"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"q\":".encode()),
            ("pipelined", b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /version HTTP/1.1\r\nHost: x\r\n"
                          b"Authorization: Bearer " + MASTER.encode() + b"\r\nConnection: close\r\n\r\n"),
            ("pipelined garbage", b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n\x16\x03\x01\x00\x00garbage\r\n\r\n"),
        ]
        while not self.stop.is_set():
            for kind, data in cases:
                s = socket.create_connection((HOST, GATEWAY))
                try:
                    s.sendall(data)
                    if kind == "truncated body":
                        s.shutdown(socket.SHUT_WR)
                    answer = read_answer(s, 5)
                except OSError:
                    answer = b""
                s.close()
                self.saw(kind, status_of(answer))
                if kind == "pipelined":
                    self.saw("pipelined answers", answer.count(b"HTTP/1.1 200"))
            self.stop.wait(0.2)


def test_a_good_client_is_served_through_hostile_ones(hostile):
    good = hostile["master"]
    gw_pid = pid_of(hostile, "gateway")
    bad = Hostile()
    workers = [bad.flood, bad.drips, bad.malformed] + [bad.wrong_key_uploads] * UPLOADERS
    threads = [threading.Thread(target=w, daemon=True) for w in workers]
    for t in threads:
        t.start()
    searches, failures, tasks, written = 0, [], [], []
    try:
        started = time.monotonic()
        batch = 0
        while time.monotonic() - started < LOAD_S:
            status, body = good.post(f"/indexes/{INDEX}/search", {"q": "doc", "limit": 3})
            searches += 1
            if status != 200:
                failures.append(("search", status, body))
            docs = [{"id": f"d{batch}-{i}", "title": f"doc {batch}"} for i in range(10)]
            status, task = good.post(f"/indexes/{INDEX}/documents", docs)
            if status == 202:
                tasks.append(task["taskUid"])
                written += [d["id"] for d in docs]
            else:
                failures.append(("write", status, task))
            batch += 1
            time.sleep(0.05)
    finally:
        bad.stop.set()
        for t in threads:
            t.join(30)
    print(f"\ngood client: {searches} searches, {len(tasks)} writes, failures {failures[:3]}")
    print("hostile clients:", json.dumps(bad.seen, sort_keys=True))
    assert not failures, failures[:5]
    assert searches > 20 and len(tasks) > 20
    for uid in tasks:
        assert good.wait_task(uid)["status"] == "succeeded", uid
    status, page = good.get(f"/indexes/{INDEX}/documents", limit=len(written) + 10, fields="id")
    assert status == 200, page
    assert {d["id"] for d in page["results"]} == set(written)
    # each kind of hostile client got its own answer
    seen = bad.seen
    assert seen["flood"] == {FLOOD: 1}, seen
    assert set(seen["drip"]) == {408}, seen
    assert set(seen["wrong-key upload"]) == {403}, seen
    assert set(seen["not http"]) == {400} and set(seen["nul in path"]) == {400}, seen
    assert set(seen["huge head"]) == {431} and set(seen["truncated body"]) == {400}, seen
    assert set(seen["pipelined"]) == {200} and set(seen["pipelined answers"]) == {2}, seen
    assert set(seen["pipelined garbage"]) == {200}, seen
    os.kill(gw_pid, 0)  # still running
    assert healthy(good)
