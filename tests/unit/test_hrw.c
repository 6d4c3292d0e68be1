/* test_hrw.c: the shard function and HRW placement, including minimal movement. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hrw.h"

static void shard_is_xxh64_mod_s(void **state)
{
    (void)state;
    /* xxh64("", 0) = 0xEF46DB3751D8E999 */
    assert_int_equal(mr_shard_of("", 0, 1000), (uint32_t)(0xEF46DB3751D8E999ULL % 1000));
    /* stable across calls, and always below S */
    for (uint32_t s = 1; s < 50; s++) {
        uint32_t k = mr_shard_of("doc-42", 6, s);
        assert_true(k < s);
        assert_int_equal(k, mr_shard_of("doc-42", 6, s));
    }
}

static void shards_spread_evenly(void **state)
{
    (void)state;
    int counts[8] = {0};
    char id[32];
    for (int i = 0; i < 80000; i++) {
        int n = snprintf(id, sizeof id, "%d", i);
        counts[mr_shard_of(id, (size_t)n, 8)]++;
    }
    for (int k = 0; k < 8; k++)
        assert_in_range(counts[k], 9500, 10500);
}

static void placement_is_deterministic_and_distinct(void **state)
{
    (void)state;
    const char *nodes[] = {"n1", "n2", "n3", "n4", "n5"};
    size_t a[3], b[3];
    for (uint32_t s = 0; s < 64; s++) {
        assert_int_equal(mr_hrw_place("idx", s, nodes, 5, 3, a), 3);
        mr_hrw_place("idx", s, nodes, 5, 3, b);
        assert_memory_equal(a, b, sizeof a);
        assert_true(a[0] != a[1] && a[1] != a[2] && a[0] != a[2]);
        /* best first */
        assert_true(mr_hrw_score("idx", s, nodes[a[0]]) >= mr_hrw_score("idx", s, nodes[a[1]]));
    }
    /* rf larger than the node count: all nodes */
    assert_int_equal(mr_hrw_place("idx", 0, nodes, 2, 3, a), 2);
}

/* Adding a node moves only the replicas it wins, about rf/(n+1) of them, and never reshuffles
 * replicas among the old nodes. */
static void adding_a_node_moves_the_minimum(void **state)
{
    (void)state;
    const char *nodes[] = {"n1", "n2", "n3", "n4"};
    enum { S = 4096, RF = 2 };
    size_t moved = 0;
    for (uint32_t s = 0; s < S; s++) {
        size_t before[RF], after[RF];
        mr_hrw_place("packages", s, nodes, 3, RF, before);
        mr_hrw_place("packages", s, nodes, 4, RF, after);
        for (int r = 0; r < RF; r++) {
            int kept = 0;
            for (int q = 0; q < RF; q++)
                kept |= after[r] == before[q];
            if (!kept) {
                /* a replica that moved can only have moved to the new node */
                assert_int_equal(after[r], 3);
                moved++;
            }
        }
    }
    /* expected fraction of shard-replicas moved: 1/4 */
    double fraction = (double)moved / (S * RF);
    assert_true(fraction > 0.22 && fraction < 0.28);
}

static void removing_a_node_moves_only_its_replicas(void **state)
{
    (void)state;
    const char *four[] = {"n1", "n2", "n3", "n4"};
    const char *three[] = {"n1", "n2", "n4"};
    for (uint32_t s = 0; s < 2048; s++) {
        size_t before[2], after[2];
        mr_hrw_place("packages", s, four, 4, 2, before);
        mr_hrw_place("packages", s, three, 3, 2, after);
        for (int r = 0; r < 2; r++) {
            if (before[r] == 2) /* n3 left: its replica lands anywhere */
                continue;
            const char *kept = four[before[r]];
            int found = 0;
            for (int q = 0; q < 2; q++)
                found |= strcmp(three[after[q]], kept) == 0;
            assert_true(found);
        }
    }
}

static void rank_orders_by_key(void **state)
{
    (void)state;
    const char *a[] = {"n1", "n2", "n3"};
    const char *b[] = {"n3", "n1", "n2"};
    mr_hrw_rank(12345, a, 3);
    mr_hrw_rank(12345, b, 3);
    for (int i = 0; i < 3; i++)
        assert_string_equal(a[i], b[i]);
    /* different keys spread the first choice */
    int first[3] = {0};
    for (uint64_t k = 0; k < 3000; k++) {
        const char *c[] = {"n1", "n2", "n3"};
        mr_hrw_rank(k, c, 3);
        first[c[0][1] - '1']++;
    }
    for (int i = 0; i < 3; i++)
        assert_in_range(first[i], 800, 1200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shard_is_xxh64_mod_s),
        cmocka_unit_test(shards_spread_evenly),
        cmocka_unit_test(placement_is_deterministic_and_distinct),
        cmocka_unit_test(adding_a_node_moves_the_minimum),
        cmocka_unit_test(removing_a_node_moves_only_its_replicas),
        cmocka_unit_test(rank_orders_by_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
