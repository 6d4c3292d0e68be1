/* test_plan.c: target placement, the HRW diff, and the steps planned for one shard. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "plan.h"

static mr_topology_holder holder; /* only for its lock: these snapshots are never published */

static mr_topology *with_members(int n, int draining)
{
    mr_topology *t = mr_topology_new();
    for (int i = 0; i < n; i++) {
        mr_node node = {0};
        snprintf(node.id, sizeof node.id, "n%d", i + 1);
        snprintf(node.url, sizeof node.url, "http://127.0.0.1:%d", 7700 + i);
        enum mr_member_state st = i + 1 == draining ? MR_MEMBER_DRAINING : MR_MEMBER_ACTIVE;
        mr_topology *next = mr_topology_with_member(t, &node, &st);
        mr_topology_release(&holder, t);
        t = next;
    }
    return t;
}

static mr_index placed(const mr_topology *t, uint32_t shards, uint32_t rf)
{
    mr_index ix = {.shard_count = shards, .rf = rf};
    strcpy(ix.uid, "packages");
    strcpy(ix.storage, "packages");
    const char *ids[MR_MAX_NODES];
    mr_index_place(&ix, ids, mr_topology_active_ids(t, ids));
    return ix;
}

/* Adding a 4th node to 3 moves about a quarter of the shard-replicas: only those HRW gives it. */
static void adding_a_node_moves_only_its_share(void **state)
{
    (void)state;
    mr_topology *three = with_members(3, 0), *four = with_members(4, 0);
    mr_index ix = placed(three, 64, 2);
    assert_int_equal(mr_plan_moves(three, &ix), 0);
    size_t moves = mr_plan_moves(four, &ix);
    /* every move lands on n4, and n4 gets exactly the moves */
    size_t on_n4 = 0;
    for (uint32_t s = 0; s < ix.shard_count; s++)
        on_n4 += mr_plan_wanted(four, &ix, s, "n4");
    assert_int_equal(moves, on_n4);
    assert_true(moves > 64 * 2 / 4 - 12 && moves < 64 * 2 / 4 + 12);
    mr_index_clear(&ix);
    mr_topology_release(&holder, three);
    mr_topology_release(&holder, four);
}

static void steps_replace_before_retiring(void **state)
{
    (void)state;
    mr_topology *t = with_members(4, 0);
    mr_topology *three = with_members(3, 0);
    mr_index ix = placed(three, 16, 2);
    size_t budget = 1000, adds = 0, retires = 0;
    for (uint32_t s = 0; s < ix.shard_count; s++) {
        mr_step steps[MR_MAX_REPLICAS * 2];
        size_t n = mr_plan_shard(t, &ix, s, &budget, steps);
        for (size_t i = 0; i < n; i++) {
            adds += steps[i].kind == MR_STEP_ADD;
            retires += steps[i].kind == MR_STEP_RETIRE;
            if (steps[i].kind == MR_STEP_ADD)
                assert_string_equal(steps[i].node, "n4");
        }
    }
    assert_int_equal(adds, mr_plan_moves(t, &ix));
    assert_int_equal(retires, 0); /* nothing leaves until its replacement is ready */
    mr_index_clear(&ix);
    mr_topology_release(&holder, t);
    mr_topology_release(&holder, three);
}

static void throttle_limits_additions(void **state)
{
    (void)state;
    mr_topology *t = with_members(4, 0), *three = with_members(3, 0);
    mr_index ix = placed(three, 16, 2);
    size_t budget = 2, adds = 0;
    for (uint32_t s = 0; s < ix.shard_count; s++) {
        mr_step steps[MR_MAX_REPLICAS * 2];
        size_t n = mr_plan_shard(t, &ix, s, &budget, steps);
        for (size_t i = 0; i < n; i++)
            adds += steps[i].kind == MR_STEP_ADD;
    }
    assert_int_equal(adds, 2);
    assert_int_equal(budget, 0);
    mr_index_clear(&ix);
    mr_topology_release(&holder, t);
    mr_topology_release(&holder, three);
}

/* A draining node's ready replica retires once the target holds its ready copies; a replica on a
 * node that left is forgotten at once. */
static void drained_replicas_retire_after_replacement(void **state)
{
    (void)state;
    mr_topology *all = with_members(3, 0), *drain = with_members(3, 3);
    mr_index ix = placed(all, 8, 2);
    for (uint32_t s = 0; s < ix.shard_count; s++) {
        mr_shard *sh = &ix.shards[s];
        int holds = 0;
        for (size_t r = 0; r < sh->count; r++)
            holds |= strcmp(sh->replicas[r].node, "n3") == 0;
        size_t budget = 10;
        mr_step steps[MR_MAX_REPLICAS * 2];
        size_t n = mr_plan_shard(drain, &ix, s, &budget, steps);
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
        n = mr_plan_shard(drain, &ix, s, &budget, steps);
        assert_int_equal(n, 1);
        assert_int_equal(steps[0].kind, MR_STEP_RETIRE);
        assert_string_equal(steps[0].node, "n3");
    }
    mr_topology *gone = with_members(2, 0);
    size_t budget = 0;
    mr_step steps[MR_MAX_REPLICAS * 2];
    size_t n = mr_plan_shard(gone, &ix, 0, &budget, steps);
    int forgot = 0;
    for (size_t i = 0; i < n; i++)
        forgot |= steps[i].kind == MR_STEP_FORGET && strcmp(steps[i].node, "n3") == 0;
    int held = 0;
    for (size_t r = 0; r < ix.shards[0].count; r++)
        held |= strcmp(ix.shards[0].replicas[r].node, "n3") == 0;
    assert_int_equal(forgot, held);
    mr_index_clear(&ix);
    mr_topology_release(&holder, all);
    mr_topology_release(&holder, drain);
    mr_topology_release(&holder, gone);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(adding_a_node_moves_only_its_share),
        cmocka_unit_test(steps_replace_before_retiring),
        cmocka_unit_test(throttle_limits_additions),
        cmocka_unit_test(drained_replicas_retire_after_replacement),
    };
    mr_topology_holder_init(&holder);
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    mr_topology_holder_destroy(&holder);
    return failed;
}
