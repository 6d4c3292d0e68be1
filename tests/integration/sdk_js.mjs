// Drives the gateway with the official JS client, as an application would. Exits non-zero on
// the first failed expectation. Usage: node sdk_js.mjs <gateway url>
// Task waits get 60 s: a fresh Meilisearch index can take seconds on its first documents, and the
// client's 5 s default is tight for S shard indexes on shared cores.
import assert from "node:assert/strict";
import { Meilisearch, MeilisearchApiError } from "meilisearch";

const client = new Meilisearch({ host: process.argv[2] });
const index = client.index("sdk_js_books");

assert.equal((await client.health()).status, "available");

await client.createIndex("sdk_js_books", { primaryKey: "isbn" }).waitTask({ timeout: 60000 });
await index.updateSettings({ filterableAttributes: ["genre"], sortableAttributes: ["year"] }).waitTask({ timeout: 60000 });
const books = [
  { isbn: "b1", title: "The Hobbit", genre: "fantasy", year: 1937 },
  { isbn: "b2", title: "Dune", genre: "scifi", year: 1965 },
  { isbn: "b3", title: "Neuromancer", genre: "scifi", year: 1984 },
  { isbn: "b4", title: "The Left Hand of Darkness", genre: "scifi", year: 1969 },
  { isbn: "b5", title: "Earthsea", genre: "fantasy", year: 1968 },
];
const added = await index.addDocuments(books).waitTask({ timeout: 60000 });
assert.equal(added.status, "succeeded");
assert.equal(added.details.indexedDocuments, 5);

const dune = await index.search("dune");
assert.deepEqual(dune.hits.map((h) => h.isbn), ["b2"]);

const scifi = await index.search("", { filter: "genre = scifi", sort: ["year:asc"], facets: ["genre"] });
assert.deepEqual(scifi.hits.map((h) => h.year), [1965, 1969, 1984]);
assert.deepEqual(scifi.facetDistribution, { genre: { scifi: 3 } });

const multi = await client.multiSearch({
  queries: [{ indexUid: "sdk_js_books", q: "hobbit" }, { indexUid: "sdk_js_books", q: "earthsea" }],
});
assert.deepEqual(multi.results.map((r) => r.hits[0].isbn), ["b1", "b5"]);

const settings = await index.getSettings();
assert.deepEqual(settings.filterableAttributes, ["genre"]);

const doc = await index.getDocument("b3");
assert.equal(doc.title, "Neuromancer");
const page = await index.getDocuments({ limit: 2, offset: 1 });
assert.equal(page.total, 5);
assert.equal(page.results.length, 2);

await index.deleteDocument("b3").waitTask({ timeout: 60000 });
await assert.rejects(index.getDocument("b3"), (e) => e instanceof MeilisearchApiError && e.cause.code === "document_not_found");

const stats = await index.getStats();
assert.equal(stats.numberOfDocuments, 4);

await assert.rejects(client.index("sdk_js_missing").search("x"),
  (e) => e instanceof MeilisearchApiError && e.cause.code === "index_not_found");

await client.deleteIndex("sdk_js_books").waitTask({ timeout: 60000 });
await assert.rejects(index.getRawInfo(), (e) => e.cause?.code === "index_not_found");
console.log("js sdk: ok");
