#!/usr/bin/env python3
"""Official Meilisearch SDK test suites, unchanged, against one plain Meilisearch node and against a
Miroir cluster's gateway (default shards and replicas, 3 nodes), in the same run.

  suites.py [--js DIR] [--no-go] [--keep]

The Go suite (meilisearch-go's ./integration package) comes whole from the Go module proxy. The JS
suite (meilisearch-js's vitest suite) exists only in its public repository: DIR is a checkout of
its tag with its dependencies installed. Both read MEILISEARCH_URL and use the master key
"masterKey", so nothing in them is changed. What they run without is in exclusions.txt, with why.
Prints passed and failed per suite and server, then the tests the gateway fails that the node
passes; exits 1 if there are any."""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
GO_MODULE = "github.com/meilisearch/meilisearch-go"
GO_VERSION = "v0.34.1"  # the last tag before the suite needs an engine newer than 1.21
JS_COMMIT = "4e52ecd86ee46a0c06743443b3940e3bf212643c"  # meilisearch-js v0.54.0
MASTER_KEY = "masterKey"
HOST = "127.0.0.1"
# Below the ephemeral range and clear of miroir.sh's and the integration tests' own ports. The
# JS suite's "bad host" tests need 127.0.0.1:7701 and localhost:9345 closed: nothing here binds them.
NODE_PORT = 18700
CLUSTER_PORTS = {"kafka": 18792, "gateway": 18710, "node_base": 18711}


def exclusions(path=os.path.join(HERE, "exclusions.txt")):
    """{(suite, kind): [(pattern, reason)]} from the exclusions file."""
    out = {}
    with open(path) as f:
        for line in f:
            fields = re.split(r"\s{2,}", line.strip(), maxsplit=3)  # a pattern may hold single spaces
            if len(fields) < 3 or line.lstrip().startswith("#"):
                continue
            suite, kind, pattern = fields[:3]
            reason = fields[3].strip() if len(fields) > 3 else ""
            out.setdefault((suite, kind), []).append((pattern, reason))
    return out


def wait_healthy(url, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer /health within {timeout}s")


class PlainNode:
    """One Meilisearch node with the suites' master key, every file of it in a directory of its
    own (dumps and snapshots included: the suites create some)."""

    def __init__(self, meili, port=NODE_PORT):
        self.dir = tempfile.mkdtemp(prefix="miroir-sdk-node-")
        self.url = f"http://{HOST}:{port}"
        self.log = open(os.path.join(self.dir, "node.log"), "wb")
        try:
            self.proc = subprocess.Popen(
                [meili, "--http-addr", f"{HOST}:{port}", "--master-key", MASTER_KEY, "--no-analytics",
                 "--db-path", os.path.join(self.dir, "data"), "--dump-dir", os.path.join(self.dir, "dumps"),
                 "--snapshot-dir", os.path.join(self.dir, "snapshots"), "--max-indexing-memory", "1GiB"],
                cwd=self.dir, stdout=self.log, stderr=subprocess.STDOUT)
        except OSError:
            self.log.close()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        try:
            wait_healthy(self.url)
        except RuntimeError:
            self.stop()
            raise

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Cluster:
    """A Miroir cluster through miroir.sh, with the suites' master key."""

    def __init__(self, build, ports=CLUSTER_PORTS, extra_env=None):
        self.state = tempfile.mkdtemp(prefix="miroir-sdk-cluster-")
        self.url = f"http://{HOST}:{ports['gateway']}"
        self.env = dict(os.environ, MIROIR_STATE=self.state, MIROIR_BUILD=build, MIROIR_MASTER_KEY=MASTER_KEY,
                        MIROIR_KAFKA_PORT=str(ports["kafka"]), MIROIR_GATEWAY_PORT=str(ports["gateway"]),
                        MIROIR_NODE_PORT_BASE=str(ports["node_base"]), MIROIR_NODE_COUNT="3", **(extra_env or {}))
        started = subprocess.run([os.path.join(ROOT, "miroir.sh"), "start"], env=self.env, cwd=ROOT)
        if started.returncode != 0:
            self.stop()
            raise RuntimeError("miroir.sh start failed")
        wait_healthy(self.url)

    def stop(self, keep=False):
        subprocess.run([os.path.join(ROOT, "miroir.sh"), "down"], env=self.env, cwd=ROOT)
        if not keep:
            shutil.rmtree(self.state, ignore_errors=True)


def go_env(deps):
    return dict(os.environ, GOPATH=os.path.join(deps, "go"), GOFLAGS="-modcacherw", GOTOOLCHAIN="local")


def go_suite_copy(deps):
    """A writable copy of the module at its tag, from the module proxy (the go command checks
    its sum against the checksum database). The caller removes it."""
    out = subprocess.run(["go", "mod", "download", "-json", f"{GO_MODULE}@{GO_VERSION}"], env=go_env(deps),
                         capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    module = json.loads(out.stdout)["Dir"]
    copy = tempfile.mkdtemp(prefix="miroir-sdk-go-")
    shutil.copytree(module, os.path.join(copy, "suite"))
    return os.path.join(copy, "suite")


def leaf_results(events):
    """{leaf test name: "pass" | "fail" | "skip"} from go test -json events: a test with
    subtests counts through its subtests only."""
    final = {}
    for e in events:
        if e.get("Test") and e.get("Action") in ("pass", "fail", "skip"):
            final[e["Test"]] = e["Action"]
    names = set(final)
    return {n: s for n, s in final.items() if not any(m.startswith(n + "/") for m in names)}


def go_events(suite, url, deps, skipped, log_path, timeout_s, only, append):
    skip = "^(" + "|".join(re.escape(t) for t in skipped) + ")$"
    cmd = ["go", "test", "-count=1", "-json", "-timeout", f"{timeout_s}s", "-skip", skip, "./integration"]
    if only:
        cmd[-1:-1] = ["-run", "/".join(f"^{re.escape(part)}$" for part in only.split("/"))]
    with open(log_path, "a" if append else "w") as log:
        proc = subprocess.run(cmd, cwd=suite, env=dict(go_env(deps), MEILISEARCH_URL=url), stdout=subprocess.PIPE,
                              stderr=log, text=True, timeout=timeout_s + 120)
        log.write(proc.stdout)
    events = []
    for line in proc.stdout.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            pass
    return events


def run_go(suite, url, deps, skipped, log_path, timeout_s=480, only=None, resumes=2):
    """Runs ./integration against url (only: one leaf test, Top/Sub); returns its leaf results.

    A whole run takes 3 to 5 minutes. One that hangs (a plain 1.21 node was once seen to leave a
    request unanswered for good, after a refused upload on the same connection) is killed by go
    test's timeout with the rest of the package unrun; the run then resumes, up to `resumes`
    times, with every test that finished skipped, so the hung test gets another try and the ones
    after it a first. What resumed is printed."""
    results, finished = {}, set()
    for attempt in range(resumes + 1):
        events = go_events(suite, url, deps, skipped + sorted(finished), log_path, timeout_s, only,
                           append=bool(only) or attempt > 0)
        ended = {e["Test"] for e in events if e.get("Test") and e.get("Action") in ("pass", "fail", "skip")}
        started = {e["Test"] for e in events if e.get("Test") and e.get("Action") == "run"}
        results.update(leaf_results(events))
        hung = sorted(started - ended)
        if not hung or only:
            break
        finished |= {t for t in ended if "/" not in t}
        print(f"go  {url}: hung in {hung[-1]}; resuming without the {len(finished)} tests that finished", flush=True)
        for name in hung:
            results.pop(name, None)
    return results


def run_js(checkout, url, files, names, log_path, timeout_s=1800, only=None):
    """Runs the vitest suite of a meilisearch-js checkout against url (only: one test, "file >
    full name"); returns {file > full name: status}."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True).stdout.strip()
    if head != JS_COMMIT:
        raise RuntimeError(f"{checkout} is at {head or 'no commit'}, not meilisearch-js v0.54.0 ({JS_COMMIT})")
    report = log_path + ".json"
    cmd = ["npx", "vitest", "run", "--reporter=json", f"--outputFile={report}",
           "-t", "^(?!.*(" + "|".join(names) + ")).*$"]
    for f in files:
        cmd += ["--exclude", f]
    if only:
        file, name = only.split(" > ", 1)
        cmd[3:3] = [file]
        cmd[cmd.index("-t") + 1] = "^" + re.escape(re.sub(r" #\d+$", "", name)) + r"\s*$"
    with open(log_path, "a" if only else "w") as log:
        subprocess.run(cmd, cwd=checkout, env=dict(os.environ, MEILISEARCH_URL=url), stdout=log,
                       stderr=subprocess.STDOUT, timeout=timeout_s)
    with open(report) as f:
        data = json.load(f)
    out = {}
    for file in data["testResults"]:
        rel = os.path.relpath(file["name"], checkout)
        for t in file["assertionResults"]:
            if t["status"] in ("passed", "failed"):
                name, k = f"{rel} > {t['fullName'].strip()}", 2
                while name in out:  # several tests may share a name: number the later ones
                    name, k = f"{rel} > {t['fullName'].strip()} #{k}", k + 1
                out[name] = "pass" if t["status"] == "passed" else "fail"
    return out


def retry_on_gateway(run, on_node, on_gateway, differs):
    """Runs again, alone, each test the gateway failed and the node passed, up to three times (a
    few of each suite compare timings, such as processingTimeMs against 0, and fail on a loaded
    node too; the gateway reports the slowest of S shards' times, so a loaded machine fails them
    more often): one pass stands, a failure that never passes stands. Returns the names run again."""
    again = sorted(n for n, st in on_node.items() if st == "pass" and on_gateway.get(n) != "pass" and n not in differs)
    for name in again[:20]:
        for _ in range(3):
            result = run(name).get(name)
            if result:
                on_gateway[name] = result
            if result == "pass":
                break
    return again[:20]


def compare(suite, on_node, on_gateway, differs):
    """Prints one line per server and the tests only the node passes (marking the documented
    differences); returns the others, and the documented differences that no longer differ."""
    for server, results in (("node", on_node), ("gateway", on_gateway)):
        passed = sum(1 for s in results.values() if s == "pass")
        failed = sum(1 for s in results.values() if s == "fail")
        print(f"{suite:3} {server:8} passed {passed:5}  failed {failed:4}  of {len(results)}")
    missing = sorted(n for n, s in on_node.items() if s == "pass" and on_gateway.get(n) != "pass")
    for name in missing:
        why = differs.get(name)
        print(f"    gateway fails: {name}" + (f"  (documented: {why})" if why else ""))
    stale = sorted(n for n in differs if n not in missing)
    for name in stale:
        print(f"    documented as differing, but does not: {name}")
    return [n for n in missing if n not in differs] + stale


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--js", metavar="DIR", help="a meilisearch-js v0.54.0 checkout with its dependencies")
    ap.add_argument("--no-go", action="store_true", help="leave the Go suite out")
    ap.add_argument("--keep", action="store_true", help="keep the cluster's state directory (its logs)")
    ap.add_argument("--meili", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--deps", required=True)
    ap.add_argument("--logs", default=tempfile.gettempdir(), help="where each run's output goes")
    args = ap.parse_args()
    args.meili, args.build, args.deps = (os.path.abspath(p) for p in (args.meili, args.build, args.deps))

    excl = exclusions()
    node = cluster = suite = None
    failing = []
    try:
        node = PlainNode(args.meili)
        cluster = Cluster(args.build)
        servers = (("node", node.url), ("gateway", cluster.url))
        if not args.no_go:
            suite = go_suite_copy(args.deps)
            skipped = [p for p, _ in excl.get(("go", "test"), [])]
            results = {}
            for server, url in servers:
                started = time.monotonic()
                results[server] = run_go(suite, url, args.deps, skipped, os.path.join(args.logs, f"sdk-go-{server}.log"))
                print(f"go  {server:8} ran in {time.monotonic() - started:.0f} s", flush=True)
            differs = dict(excl.get(("go", "differs"), []))
            log = os.path.join(args.logs, "sdk-go-gateway.log")
            again = retry_on_gateway(lambda n: run_go(suite, cluster.url, args.deps, skipped, log, only=n),
                                     results["node"], results["gateway"], differs)
            if again:
                print(f"go  gateway  ran again, alone: {', '.join(again)}")
            failing += compare("go", results["node"], results["gateway"], differs)
        if args.js:
            files = [p for p, _ in excl.get(("js", "file"), [])]
            names = [p for p, _ in excl.get(("js", "name"), [])]
            results = {}
            for server, url in servers:
                started = time.monotonic()
                results[server] = run_js(os.path.abspath(args.js), url, files, names,
                                         os.path.join(args.logs, f"sdk-js-{server}.log"))
                print(f"js  {server:8} ran in {time.monotonic() - started:.0f} s", flush=True)
            differs = dict(excl.get(("js", "differs"), []))
            log = os.path.join(args.logs, "sdk-js-gateway-again.log")
            again = retry_on_gateway(lambda n: run_js(os.path.abspath(args.js), cluster.url, files, names, log, only=n),
                                     results["node"], results["gateway"], differs)
            if again:
                print(f"js  gateway  ran again, alone: {len(again)} tests")
            failing += compare("js", results["node"], results["gateway"], differs)
    finally:
        if suite:
            shutil.rmtree(os.path.dirname(suite), ignore_errors=True)
        if cluster:
            cluster.stop(keep=args.keep)
            if args.keep:
                print(f"cluster state kept in {cluster.state}")
        if node:
            node.stop()
    return 1 if failing else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
