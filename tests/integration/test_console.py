"""The console at /_miroir/ in headless Chromium (Debian's, driven by Playwright): the cluster map
shows every replica where the topology says, each node's replicas and bytes, turns a node's cells to "down" live when the node
stops answering and back when it returns, and the search box searches through the gateway."""
import os
import signal

import pytest
from playwright.sync_api import sync_playwright

from conftest import BUILD, pid_of, wait_until

INDEX = "console"
CHROMIUM = "/usr/bin/chromium"
# as root on a machine with no outside network: no sandbox, and none of Chromium's own traffic
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def page(cluster):
    gw = cluster["gateway"]
    status, task = gw.post("/indexes", {"uid": INDEX, "primaryKey": "id", "shards": 4, "replicationFactor": 2})
    assert status == 202, task
    status, task = gw.post(f"/indexes/{INDEX}/documents", [{"id": i, "t": f"item {i}"} for i in range(60)])
    assert gw.wait_task(task["taskUid"])["status"] == "succeeded"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(cluster["gateway_url"] + f"/_miroir/#index={INDEX}&q=item")
        pg.errors = errors
        yield pg
        browser.close()


def cells(page, **attrs):
    selector = "td" + "".join(f'[data-{k}="{v}"]' for k, v in attrs.items())
    return page.locator(f'table[data-index="{INDEX}"] {selector}')


def test_the_map_shows_the_topology(cluster, page):
    page.wait_for_selector(f'table[data-index="{INDEX}"] td[data-state="ready"]', timeout=15000)
    status, topo = cluster["gateway"].get("/_miroir/topology")
    ix = next(i for i in topo["indexes"] if i["uid"] == INDEX)
    for shard in ix["placement"]:
        for rep in shard["replicas"]:
            cell = cells(page, node=rep["node"], shard=shard["shard"])
            assert cell.count() == 1
            assert cell.get_attribute("data-state") == "ready"
    placed = sum(len(s["replicas"]) for s in ix["placement"])
    assert cells(page, state="ready").count() == placed == 4 * 2
    rows = page.locator(f'table[data-index="{INDEX}"] tbody tr')
    assert sorted(rows.nth(i).get_attribute("data-node") for i in range(rows.count())) == \
        sorted(n["id"] for n in topo["nodes"])
    assert page.inner_text("#health") == "green"
    # capacity: each node's replicas, as the topology counts them, and the fullest over the mean
    for n in topo["nodes"]:
        held = page.get_attribute(f'#nodes tr[data-member="{n["id"]}"] td[data-replicas]', "data-replicas")
        assert int(held) == n["replicas"], (n, held)
    assert page.inner_text("#capacity").startswith("fullest node / mean: ")
    wait_until("refreshes", lambda: int(page.get_attribute("#updated", "data-refreshes") or 0) >= 3, 15)
    page.screenshot(path=os.path.join(BUILD, "console.png"), full_page=True)
    assert not page.errors, page.errors


def test_the_search_box(page):
    # polled from here: the page's CSP forbids the eval that page.wait_for_function would need
    wait_until("the first search", lambda: "results in" in page.inner_text("#summary"), 15)
    assert page.inner_text("#summary").startswith("60 results in console")
    assert page.locator("#hits li").count() == 10
    page.fill("#q", "item 42")
    page.click("#search button")
    wait_until("the typed search", lambda: page.locator("#hits li strong").count() > 0 and
               page.locator("#hits li strong").first.inner_text().startswith("item 42"), 15)
    assert not page.errors, page.errors


def test_a_node_going_down_shows_live(cluster, page):
    status, topo = cluster["gateway"].get("/_miroir/topology")
    ix = next(i for i in topo["indexes"] if i["uid"] == INDEX)
    victim = ix["placement"][0]["replicas"][0]["node"]
    pid = pid_of(cluster, f"node{victim[1:]}")
    os.kill(pid, signal.SIGSTOP)
    try:
        page.wait_for_selector(f'td[data-node="{victim}"][data-state="down"]', timeout=20000)
        assert page.inner_text("#health") == "yellow"
        assert "(down)" in page.inner_text(f'tr[data-node="{victim}"] th')
        page.screenshot(path=os.path.join(BUILD, "console-node-down.png"), full_page=True)
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until("the node back on the map", lambda: page.locator('td[data-state="down"]').count() == 0, 30)
    assert page.inner_text("#health") == "green"
    wait_until("the cluster's gateway searches again",
               lambda: cluster["gateway"].post(f"/indexes/{INDEX}/search", {"q": "x"})[0] == 200, 30)
