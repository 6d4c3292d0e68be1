"""The README's first command: `./miroir.sh up` in a state directory of its own starts a cluster
with a master key, loads the sample, and prints a search key and a command that work."""
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest
import requests

from conftest import ROOT, SAMPLE

PLAIN = os.environ.get("MIROIR_PLAIN_BUILD")  # `up` builds RelWithDebInfo: never into the sanitized build


@pytest.mark.skipif(not PLAIN and not os.environ.get("CI"), reason="needs MIROIR_PLAIN_BUILD (./miroir.sh test)")
def test_up_prints_a_search_that_works():
    state = tempfile.mkdtemp(prefix="miroir-up-")
    env = dict(os.environ, MIROIR_STATE=state, MIROIR_BUILD=PLAIN, MIROIR_KAFKA_PORT="21092",
               MIROIR_GATEWAY_PORT="21700", MIROIR_NODE_PORT_BASE="21701")
    env.pop("MIROIR_MASTER_KEY", None)
    try:
        up = subprocess.run([os.path.join(ROOT, "miroir.sh"), "up"], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=900)
        assert up.returncode == 0, up.stdout + up.stderr
        key = re.search(r"the default search key is ([0-9a-f]{64})", up.stdout).group(1)
        assert os.stat(os.path.join(state, "master.key")).st_mode & 0o077 == 0
        master = open(os.path.join(state, "master.key")).read().strip()
        assert master not in up.stdout
        # the printed search, as printed
        command = re.search(r"(curl -s 'http://127\.0\.0\.1:21700/indexes/packages/search'.*?)\n\n", up.stdout,
                            re.S).group(1).replace("\\\n", " ")
        found = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
        hits = json.loads(found.stdout)["hits"]
        assert len(hits) == 3 and all(set(h) == {"name", "summary"} for h in hits)
        with open(SAMPLE) as f:
            total = sum(1 for _ in f)
        r = requests.post("http://127.0.0.1:21700/indexes/packages/search", json={"q": "", "limit": 0},
                          headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert r.json()["estimatedTotalHits"] == min(total, 1000)
        assert requests.get("http://127.0.0.1:21700/indexes", timeout=30).status_code == 401
        status = subprocess.run([os.path.join(ROOT, "miroir.sh"), "ctl", "status"], env=env, capture_output=True,
                                text=True, timeout=60)
        assert status.returncode == 0 and "index packages" in status.stdout, status.stdout + status.stderr
    finally:
        subprocess.run([os.path.join(ROOT, "miroir.sh"), "down"], env=env, cwd=ROOT, capture_output=True, timeout=120)
        shutil.rmtree(state, ignore_errors=True)
