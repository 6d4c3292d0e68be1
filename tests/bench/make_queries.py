"""Writes tests/bench/queries.jsonl: the benchmark's fixed query set, from the sample corpus.

Run once; the output is checked in so every run measures the same queries. Words come from the
packages' names and summaries (the frequent ones and a spread of rarer ones); some are
misspelled, some queries carry a filter, a facet or a sort."""
import collections
import json
import os
import random
import re

ROOT = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(ROOT, "..", "..", "..", "shared", "data", "packages-sample.jsonl")

rng = random.Random(20261126)
counts = collections.Counter()
with open(SAMPLE) as f:
    for line in f:
        d = json.loads(line)
        for w in re.findall(r"[a-z]{3,}", f"{d.get('name', '')} {d.get('summary', '')}".lower()):
            counts[w] += 1
common = [w for w, _ in counts.most_common(200)]
rarer = [w for w, n in counts.items() if 3 <= n <= 30]
rng.shuffle(rarer)


def typo(w):
    i = rng.randrange(len(w) - 1)
    return w[:i] + w[i + 1] + w[i] + w[i + 2:]


queries = []
for i in range(400):
    words = rng.sample(common, rng.choice([1, 1, 2, 2, 3])) if i % 2 else [rarer[i % len(rarer)]]
    if i % 10 == 3:
        words[0] = typo(words[0])
    body = {"q": " ".join(words), "limit": 20}
    if i % 7 == 1:
        body["filter"] = rng.choice(["registry = npm", "registry = pypi", "month >= '2024-01'"])
    if i % 11 == 2:
        body["facets"] = ["registry"]
    if i % 13 == 5:
        body["sort"] = ["month:desc"]
    queries.append(body)
with open(os.path.join(ROOT, "queries.jsonl"), "w") as f:
    for q in queries:
        f.write(json.dumps(q) + "\n")
print(f"{len(queries)} queries")
