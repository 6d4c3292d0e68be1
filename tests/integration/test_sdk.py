"""The official Go SDK's own test suite (meilisearch-go's ./integration package at its pinned tag,
unchanged, from the Go module proxy) against one plain Meilisearch node and against a cluster's
gateway in the same run: the gateway must pass every test the node passes, but for the documented
differences listed in tests/sdk/exclusions.txt, which must still fail (a stale entry is an error
too). A test the gateway fails is run again once, alone: a few compare timings (processingTimeMs
against 0) and fail on a loaded node too. What the suite runs without, and why, is in the same
file."""
import os
import shutil
import sys

import pytest

from conftest import BUILD, DEPS, MEILI, ROOT, running_cluster

sys.path.insert(0, os.path.join(ROOT, "tests", "sdk"))
import suites  # noqa: E402

NODE_PORT = 28700
KAFKA_PORT, GATEWAY_PORT, NODE_PORT_BASE = 28792, 28710, 28711


@pytest.fixture(scope="module")
def servers():
    node = suites.PlainNode(MEILI, NODE_PORT)
    try:
        with running_cluster("miroir-sdk-", KAFKA_PORT, GATEWAY_PORT, NODE_PORT_BASE, master_key=suites.MASTER_KEY) as c:
            yield {"node": node.url, "gateway": c["gateway_url"]}
    finally:
        node.stop()


def test_the_go_suite_passes_on_the_gateway_as_on_a_node(servers):
    excl = suites.exclusions()
    skipped = [p for p, _ in excl.get(("go", "test"), [])]
    differs = {p: why for p, why in excl.get(("go", "differs"), [])}
    suite = suites.go_suite_copy(DEPS)
    log = os.path.join(BUILD, "sdk-go-{}.log")
    try:
        results = {server: suites.run_go(suite, url, DEPS, skipped, log.format(server))
                   for server, url in servers.items()}
        node, gateway = results["node"], results["gateway"]
        again = suites.retry_on_gateway(
            lambda n: suites.run_go(suite, servers["gateway"], DEPS, skipped, log.format("gateway"), only=n),
            node, gateway, differs)
    finally:
        shutil.rmtree(os.path.dirname(suite), ignore_errors=True)
    if again:
        print(f"\nran again, alone (timing tests): {', '.join(again)}")
    passed_on_node = {n for n, s in node.items() if s == "pass"}
    print(f"\ngo suite: node passed {len(passed_on_node)} of {len(node)}, gateway passed "
          f"{sum(s == 'pass' for s in gateway.values())} of {len(gateway)}")
    # the suite ran whole on both: a crash or a hang would leave it short
    assert len(passed_on_node) >= 300 and set(gateway) == set(node), sorted(set(node) ^ set(gateway))[:20]
    # what the gateway fails that the node passes, past the documented differences, and any
    # documented difference that no longer differs
    assert not suites.compare("go", node, gateway, differs)
