/* test_plan.c: targets planned for the members (new indexes, joins, drains, zones, indexes placed
 * before targets existed) and the steps planned for one shard. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hrw.h"
#include "plan.h"

static mr_topology_holder holder; /* only for its lock: these snapshots are never published */

/* n active members n1…; `draining` (1-based, 0: none) drains; with zones, node k is in zone
 * "z<k mod zones>". */
static mr_topology *with_members(int n, int draining, int zones)
{
    mr_topology *t = mr_topology_new();
    for (int i = 0; i < n; i++) {
        mr_member m = {.state = i + 1 == draining ? MR_MEMBER_DRAINING : MR_MEMBER_ACTIVE};
        snprintf(m.node.id, sizeof m.node.id, "n%d", i + 1);
        snprintf(m.node.url, sizeof m.node.url, "http://127.0.0.1:%d", 7700 + i);
        if (zones)
            snprintf(m.node.zone, sizeof m.node.zone, "z%d", i % zones);
        mr_topology *next = mr_topology_with_member(t, m.node.id, &m);
        mr_topology_release(&holder, t);
        t = next;
    }
    return t;
}

static mr_index placed(const mr_topology *t, const char *storage, uint32_t shards, uint32_t rf)
{
    mr_index ix = {.shard_count = shards, .rf = rf};
    snprintf(ix.uid, sizeof ix.uid, "%s", storage);
    snprintf(ix.storage, sizeof ix.storage, "%s", storage);
    mr_plan_new_index(t, &ix, NULL);
    return ix;
}

/* t with ix in it (t released). */
static mr_topology *adding(mr_topology *t, const mr_index *ix)
{
    mr_topology *next = mr_topology_with(t, ix->storage, ix);
    mr_topology_release(&holder, t);
    return next;
}

/* Plans t anew and returns its one index with the new targets. */
static mr_index replanned(const mr_topology *t, size_t *moves)
{
    mr_index *out = NULL;
    size_t count = 0;
    *moves = mr_plan_targets(t, NULL, 0.05, &out, &count);
    assert_int_equal(count, 1);
    mr_index ix = out[0];
    free(out);
    return ix;
}

static size_t on_node(const mr_index *ix, const char *node)
{
    size_t n = 0;
    for (uint32_t s = 0; s < ix->shard_count; s++)
        for (size_t r = 0; r < ix->shards[s].target_count; r++)
            n += strcmp(ix->shards[s].target[r], node) == 0;
    return n;
}

/* A new index on 3 nodes: its replicas are where its targets are, at most ceil(S*R/N) a node, and
 * it is planned for these members. */
static void a_new_index_is_placed_within_the_bound(void **state)
{
    (void)state;
    mr_topology *t = with_members(3, 0, 0);
    for (int name = 0; name < 50; name++) {
        char storage[32];
        snprintf(storage, sizeof storage, "fresh-%d", name);
        mr_index ix = placed(t, storage, 4, 2);
        for (int k = 1; k <= 3; k++) {
            char node[8];
            snprintf(node, sizeof node, "n%d", k);
            assert_true(on_node(&ix, node) <= 3);
        }
        for (uint32_t s = 0; s < 4; s++) {
            assert_int_equal(ix.shards[s].count, 2);
            assert_string_equal(ix.shards[s].replicas[0].node, ix.shards[s].target[0]);
            assert_int_equal(ix.shards[s].replicas[1].state, MR_REPLICA_READY);
        }
        assert_true(ix.planned_for == mr_topology_signature(t));
        mr_index_clear(&ix);
    }
    mr_topology_release(&holder, t);
}

/* Adding a 4th node to 3: the plan is due, and the new targets move a quarter of the replicas,
 * every one onto n4. */
static void adding_a_node_moves_only_its_share(void **state)
{
    (void)state;
    mr_topology *three = with_members(3, 0, 0);
    mr_index ix = placed(three, "packages", 64, 2);
    three = adding(three, &ix);
    assert_false(mr_plan_due(three));
    assert_int_equal(mr_plan_moves(three, &three->indexes[0]), 0);
    mr_topology *four = adding(with_members(4, 0, 0), &ix);
    assert_true(mr_plan_due(four));
    size_t moves;
    mr_index next = replanned(four, &moves);
    assert_int_equal(moves, on_node(&next, "n4"));
    assert_int_equal(moves, 64 * 2 / 4);
    four = adding(four, &next);
    assert_false(mr_plan_due(four));
    assert_int_equal(mr_plan_moves(four, &four->indexes[0]), moves);
    mr_index_clear(&next);
    mr_index_clear(&ix);
    mr_topology_release(&holder, three);
    mr_topology_release(&holder, four);
}

/* The steps toward the new targets add the new replicas and retire nothing until they are ready;
 * the throttle bounds how many start at once. */
static void steps_replace_before_retiring(void **state)
{
    (void)state;
    mr_topology *three = with_members(3, 0, 0);
    mr_index ix = placed(three, "steps", 16, 2);
    mr_topology *four = adding(with_members(4, 0, 0), &ix);
    size_t moves;
    mr_index next = replanned(four, &moves);
    four = adding(four, &next);
    const mr_index *planned = &four->indexes[0];
    static const size_t budgets[] = {1000, 2};
    for (size_t b = 0; b < 2; b++) {
        size_t budget = budgets[b], adds = 0, retires = 0;
        for (uint32_t s = 0; s < planned->shard_count; s++) {
            mr_step steps[MR_MAX_REPLICAS * 2];
            size_t n = mr_plan_shard(four, planned, s, &budget, steps);
            for (size_t i = 0; i < n; i++) {
                adds += steps[i].kind == MR_STEP_ADD;
                retires += steps[i].kind == MR_STEP_RETIRE;
                if (steps[i].kind == MR_STEP_ADD)
                    assert_string_equal(steps[i].node, "n4");
            }
        }
        assert_int_equal(adds, budgets[b] == 2 ? 2 : moves);
        assert_int_equal(retires, 0); /* nothing leaves until its replacement is ready */
    }
    mr_index_clear(&next);
    mr_index_clear(&ix);
    mr_topology_release(&holder, three);
    mr_topology_release(&holder, four);
}

/* A draining node's replicas get targets elsewhere; its ready replica retires once the target
 * holds its ready copies; a replica on a node that left is forgotten at once. */
static void drained_replicas_retire_after_replacement(void **state)
{
    (void)state;
    mr_topology *all = with_members(3, 0, 0);
    mr_index ix = placed(all, "drained", 8, 2);
    mr_topology *drain = adding(with_members(3, 3, 0), &ix);
    size_t moves;
    mr_index next = replanned(drain, &moves);
    assert_int_equal(on_node(&next, "n3"), 0);
    assert_int_equal(moves, on_node(&ix, "n3"));
    drain = adding(drain, &next);
    mr_index *cur = &next; /* its replicas as placed, its targets as planned */
    for (uint32_t s = 0; s < cur->shard_count; s++) {
        mr_shard *sh = &cur->shards[s];
        int holds = mr_shard_replica_index(sh, "n3") >= 0;
        size_t budget = 10;
        mr_step steps[MR_MAX_REPLICAS * 2];
        size_t n = mr_plan_shard(drain, cur, s, &budget, steps);
        if (!holds) {
            assert_int_equal(n, 0);
            continue;
        }
        /* the replacement is placed; n3 stays until it is ready */
        assert_int_equal(n, 1);
        assert_int_equal(steps[0].kind, MR_STEP_ADD);
        mr_replica *nr = &sh->replicas[sh->count++];
        *nr = (mr_replica){.state = MR_REPLICA_READY};
        strcpy(nr->node, steps[0].node);
        n = mr_plan_shard(drain, cur, s, &budget, steps);
        assert_int_equal(n, 1);
        assert_int_equal(steps[0].kind, MR_STEP_RETIRE);
        assert_string_equal(steps[0].node, "n3");
    }
    mr_topology *gone = with_members(2, 0, 0);
    size_t budget = 0;
    mr_step steps[MR_MAX_REPLICAS * 2];
    size_t n = mr_plan_shard(gone, &ix, 0, &budget, steps);
    int forgot = 0;
    for (size_t i = 0; i < n; i++)
        forgot |= steps[i].kind == MR_STEP_FORGET && strcmp(steps[i].node, "n3") == 0;
    assert_int_equal(forgot, mr_shard_replica_index(&ix.shards[0], "n3") >= 0);
    mr_index_clear(&next);
    mr_index_clear(&ix);
    mr_topology_release(&holder, all);
    mr_topology_release(&holder, drain);
    mr_topology_release(&holder, gone);
}

/* An index placed by rendezvous alone, before targets existed: its target is HRW's until it is
 * planned, and the plan is due; planned, it keeps every replica the bound allows. */
static void an_index_placed_by_rendezvous_is_planned_anew(void **state)
{
    (void)state;
    mr_topology *t = with_members(3, 0, 0);
    mr_index old = {.shard_count = 4, .rf = 2};
    strcpy(old.uid, "legacy");
    strcpy(old.storage, "legacy");
    old.shards = calloc(4, sizeof *old.shards);
    const char *ids[] = {"n1", "n2", "n3"};
    for (uint32_t s = 0; s < 4; s++) {
        size_t top[2];
        mr_hrw_place("legacy", s, ids, 3, 2, top);
        for (size_t r = 0; r < 2; r++)
            strcpy(old.shards[s].replicas[r].node, ids[top[r]]);
        old.shards[s].count = 2;
    }
    t = adding(t, &old);
    assert_true(mr_plan_due(t));
    const char *target[MR_MAX_REPLICAS];
    assert_int_equal(mr_plan_target(t, &t->indexes[0], 0, target), 2);
    assert_string_equal(target[0], old.shards[0].replicas[0].node);
    size_t moves;
    mr_index next = replanned(t, &moves);
    size_t kept = 0;
    for (uint32_t s = 0; s < 4; s++)
        for (size_t r = 0; r < next.shards[s].target_count; r++)
            kept += mr_shard_replica_index(&old.shards[s], next.shards[s].target[r]) >= 0;
    assert_int_equal(kept + moves, 8);
    for (int k = 0; k < 3; k++)
        assert_true(on_node(&next, ids[k]) <= 3);
    mr_index_clear(&next);
    mr_index_clear(&old);
    mr_topology_release(&holder, t);
}

/* Zones: targets spread a shard over zones; replicas that share one are reported, and only when
 * there are zones enough not to. */
static void zones_spread_targets_and_sharing_is_reported(void **state)
{
    (void)state;
    mr_topology *zoned = with_members(6, 0, 3);
    mr_index ix = placed(zoned, "zoned", 12, 3);
    zoned = adding(zoned, &ix);
    for (uint32_t s = 0; s < 12; s++) {
        int seen[3] = {0};
        for (size_t r = 0; r < 3; r++)
            seen[(atoi(ix.shards[s].target[r] + 1) - 1) % 3]++;
        assert_true(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
        assert_false(mr_plan_zone_shared(zoned, &zoned->indexes[0], s));
    }
    /* n1 and n4 share zone z0: a shard on both shares it */
    mr_index two = {.shard_count = 1, .rf = 2};
    strcpy(two.uid, "pair");
    strcpy(two.storage, "pair");
    two.shards = calloc(1, sizeof *two.shards);
    strcpy(two.shards[0].replicas[0].node, "n1");
    strcpy(two.shards[0].replicas[1].node, "n4");
    two.shards[0].count = 2;
    assert_true(mr_plan_zone_shared(zoned, &two, 0));
    /* with one zone for all, nothing can be spread, so nothing is reported */
    mr_topology *one_zone = with_members(3, 0, 1);
    strcpy(two.shards[0].replicas[1].node, "n2");
    assert_false(mr_plan_zone_shared(one_zone, &two, 0));
    mr_index_clear(&two);
    mr_index_clear(&ix);
    mr_topology_release(&holder, zoned);
    mr_topology_release(&holder, one_zone);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_new_index_is_placed_within_the_bound),
        cmocka_unit_test(adding_a_node_moves_only_its_share),
        cmocka_unit_test(steps_replace_before_retiring),
        cmocka_unit_test(drained_replicas_retire_after_replacement),
        cmocka_unit_test(an_index_placed_by_rendezvous_is_planned_anew),
        cmocka_unit_test(zones_spread_targets_and_sharing_is_reported),
    };
    mr_topology_holder_init(&holder);
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    mr_topology_holder_destroy(&holder);
    return failed;
}
