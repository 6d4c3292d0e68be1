/* test_topology.c: index definitions in JSON, placement, and snapshots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "topology.h"

static mr_index make_index(const char *uid)
{
    const char *nodes[3] = {"n1", "n2", "n3"};
    mr_index ix = {.shard_count = 4, .rf = 2, .max_total_hits = 1000, .max_values_per_facet = 100};
    strcpy(ix.uid, uid);
    strcpy(ix.storage, uid);
    strcpy(ix.primary_key, "id");
    strcpy(ix.created_at, "2026-01-01T00:00:00Z");
    strcpy(ix.updated_at, "2026-01-01T00:00:00Z");
    ix.shards = calloc(ix.shard_count, sizeof *ix.shards);
    for (uint32_t s = 0; s < ix.shard_count; s++) { /* placed, and planned, round the ring */
        ix.shards[s].deleted_at = -1;
        for (size_t r = 0; r < 2; r++) {
            strcpy(ix.shards[s].replicas[r].node, nodes[(s + r) % 3]);
            strcpy(ix.shards[s].target[r], nodes[(s + r) % 3]);
        }
        ix.shards[s].count = ix.shards[s].target_count = 2;
    }
    ix.planned_for = 0xfeedbeefULL;
    return ix;
}

static void json_round_trip(void **state)
{
    (void)state;
    mr_index ix = make_index("packages");
    json_t *j = mr_index_to_json(&ix);
    mr_index back;
    assert_int_equal(mr_index_from_json(j, &back), 0);
    assert_string_equal(back.uid, "packages");
    assert_int_equal(back.shard_count, 4);
    for (uint32_t s = 0; s < 4; s++) {
        assert_int_equal(back.shards[s].count, 2);
        assert_string_equal(back.shards[s].replicas[0].node, ix.shards[s].replicas[0].node);
        assert_int_equal(back.shards[s].replicas[1].state, MR_REPLICA_READY);
        assert_int_equal(back.shards[s].target_count, 2);
        assert_string_equal(back.shards[s].target[1], ix.shards[s].target[1]);
    }
    assert_true(back.planned_for == 0xfeedbeefULL);
    json_object_set_new(j, "shards", json_integer(0));
    mr_index bad;
    assert_int_equal(mr_index_from_json(j, &bad), -1);
    json_decref(j);
    mr_index_clear(&back);
    mr_index_clear(&ix);
}

static void snapshots_are_immutable(void **state)
{
    (void)state;
    mr_topology_holder h;
    mr_topology_holder_init(&h);
    mr_index a = make_index("a"), c = make_index("c"), b = make_index("b");
    mr_topology *t0 = mr_topology_acquire(&h);
    mr_topology *t1 = mr_topology_with(t0, "c", &c);
    mr_topology *t2 = mr_topology_with(t1, "a", &a);
    mr_topology *t3 = mr_topology_with(t2, "b", &b);
    mr_topology_publish(&h, t3);
    assert_int_equal(t0->count, 0); /* a reader's snapshot did not change */
    mr_topology_release(&h, t0);
    mr_topology *now = mr_topology_acquire(&h);
    assert_int_equal(now->count, 3);
    assert_string_equal(now->indexes[0].uid, "a"); /* sorted */
    assert_string_equal(now->indexes[2].uid, "c");
    assert_non_null(mr_topology_find(now, "b"));
    assert_null(mr_topology_find(now, "d"));
    mr_topology *gone = mr_topology_with(now, "b", NULL);
    assert_int_equal(gone->count, 2);
    assert_null(mr_topology_find(gone, "b"));
    mr_topology_release(&h, now);
    mr_topology_publish(&h, gone);
    mr_topology_release(&h, t1);
    mr_topology_release(&h, t2);
    mr_topology_holder_destroy(&h);
    mr_index_clear(&a);
    mr_index_clear(&b);
    mr_index_clear(&c);
}

/* A uid has one live incarnation and any number of dropped ones, each under its own storage. */
static void incarnations_by_storage(void **state)
{
    (void)state;
    mr_topology_holder h;
    mr_topology_holder_init(&h);
    mr_index one = make_index("movies"), two = make_index("movies");
    mr_storage_name(one.storage, sizeof one.storage, "movies", 1);
    mr_storage_name(two.storage, sizeof two.storage, "movies", 2);
    assert_string_equal(one.storage, "movies-1");
    mr_topology *t0 = mr_topology_acquire(&h);
    mr_topology *t1 = mr_topology_with(t0, one.storage, &one);
    assert_string_equal(mr_topology_find(t1, "movies")->storage, "movies-1");
    /* dropping it keeps it, by its storage, but the uid has no live incarnation */
    one.deleted = 1;
    one.shards[2].deleted_at = 41;
    mr_topology *t2 = mr_topology_with(t1, one.storage, &one);
    assert_null(mr_topology_find(t2, "movies"));
    assert_int_equal(t2->count, 1);
    assert_int_equal(mr_topology_find_storage(t2, "movies-1")->shards[2].deleted_at, 41);
    /* a new live incarnation beside the dropped one; the live one sorts first */
    mr_topology *t3 = mr_topology_with(t2, two.storage, &two);
    assert_int_equal(t3->count, 2);
    assert_string_equal(mr_topology_find(t3, "movies")->storage, "movies-2");
    assert_false(t3->indexes[0].deleted);
    assert_true(mr_topology_find_storage(t3, "movies-1")->deleted);
    /* a live definition replaces the uid's other live one (a swap gives it another storage) */
    mr_index three = make_index("movies");
    mr_storage_name(three.storage, sizeof three.storage, "books", 4);
    mr_topology *t4 = mr_topology_with(t3, three.storage, &three);
    assert_int_equal(t4->count, 2);
    assert_string_equal(mr_topology_find(t4, "movies")->storage, "books-4");
    /* collected: gone */
    mr_topology *t5 = mr_topology_with(t4, "movies-1", NULL);
    assert_int_equal(t5->count, 1);
    assert_null(mr_topology_find_storage(t5, "movies-1"));
    mr_topology *all[] = {t0, t1, t2, t3, t4};
    for (size_t i = 0; i < 5; i++)
        mr_topology_release(&h, all[i]);
    mr_topology_publish(&h, t5);
    mr_topology_holder_destroy(&h);
    mr_index_clear(&one);
    mr_index_clear(&two);
    mr_index_clear(&three);
}

static void dropped_definitions_keep_their_deletion(void **state)
{
    (void)state;
    mr_index ix = make_index("gone");
    ix.deleted = 1;
    ix.generation = 3;
    for (uint32_t s = 0; s < 4; s++)
        ix.shards[s].deleted_at = 100 + s;
    json_t *j = mr_index_to_json(&ix);
    mr_index back;
    assert_int_equal(mr_index_from_json(j, &back), 0);
    assert_true(back.deleted);
    assert_int_equal(back.generation, 3);
    for (uint32_t s = 0; s < 4; s++)
        assert_int_equal(back.shards[s].deleted_at, 100 + s);
    /* a placement written later keeps them */
    json_t *p = mr_placement_to_json(&back);
    assert_int_equal(mr_placement_from_json(p, &back), 0);
    assert_int_equal(back.shards[3].deleted_at, 103);
    json_decref(p);
    json_decref(j);
    mr_index_clear(&back);
    mr_index_clear(&ix);
}

static void shard_index_names(void **state)
{
    (void)state;
    char name[64];
    mr_shard_index_name(name, sizeof name, "movies", 12);
    assert_string_equal(name, "movies__s12");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_round_trip),
        cmocka_unit_test(snapshots_are_immutable),
        cmocka_unit_test(shard_index_names),
        cmocka_unit_test(incarnations_by_storage),
        cmocka_unit_test(dropped_definitions_keep_their_deletion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
