/* test_latency.c: latency estimates, and the replica order they give (latency.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "latency.h"

#define NOW 1000000

static void learn(mr_latency *l, double ms, int times)
{
    for (int i = 0; i < times; i++)
        mr_latency_observe(l, ms);
}

/* The order for a shard whose replicas are a and b, in that rendezvous order. */
static const char *first(mr_latency *a, mr_latency *b, int64_t now)
{
    mr_latency *lat[] = {a, b};
    const char *nodes[] = {"a", "b"};
    mr_latency_prefer(lat, nodes, 2, now);
    return nodes[0];
}

static void the_estimate_follows_answers(void **state)
{
    (void)state;
    mr_latency l = {0};
    double mean, high;
    mr_latency_get(&l, &mean, &high);
    assert_true(mean == 0 && high == 0);
    mr_latency_get(NULL, &mean, &high);
    assert_true(mean == 0);
    mr_latency_observe(&l, 10);
    mr_latency_get(&l, &mean, &high);
    assert_true(mean == 10 && high == 30); /* the first answer: a deviation of half of it */
    learn(&l, 20, 40);
    mr_latency_get(&l, &mean, &high);
    assert_true(mean > 19 && mean <= 20 && high < 21);
}

/* A replica clearly slower goes last; one only a little slower keeps its rendezvous place, and
 * so does one nothing is known of. */
static void a_slow_replica_goes_last(void **state)
{
    (void)state;
    mr_latency a = {0}, b = {0};
    assert_string_equal(first(&a, &b, NOW), "a"); /* nothing known */
    learn(&b, 10, 20);
    assert_string_equal(first(&a, &b, NOW), "a");
    learn(&a, 15, 20);
    assert_string_equal(first(&a, &b, NOW), "a"); /* 1.5×: not slow */
    learn(&a, 300, 40);
    assert_string_equal(first(&a, &b, NOW), "b");
    assert_string_equal(first(NULL, &b, NOW), "a");
}

/* Passed over, a replica's estimate fades until it looks fast again; then one call, and one
 * only, asks it first (the probe), until the probe answers or its time is up. */
static void one_probe_at_a_time(void **state)
{
    (void)state;
    mr_latency a = {0}, b = {0};
    learn(&a, 300, 40);
    learn(&b, 10, 40);
    int passes = 0;
    while (strcmp(first(&a, &b, NOW), "b") == 0 && passes < 100000)
        passes++;
    assert_true(passes > 100 && passes < 100000); /* faded back after a few hundred queries */
    for (int i = 0; i < 50; i++)
        assert_string_equal(first(&a, &b, NOW + 10), "b"); /* the probe is out: no burst */
    assert_string_equal(first(&a, &b, NOW + 1000), "a"); /* the probe's time is up: another */
    /* the probe answers as slow as before: passed over again, from its full latency */
    mr_latency_observe(&a, 300);
    double mean, high;
    mr_latency_get(&a, &mean, &high);
    assert_true(mean == 300);
    assert_string_equal(first(&a, &b, NOW + 2000), "b");
}

/* A probe that answers fast ends the probation: every call may ask the replica again. */
static void a_fast_probe_ends_the_probation(void **state)
{
    (void)state;
    mr_latency a = {0}, b = {0};
    learn(&a, 300, 40);
    learn(&b, 10, 40);
    while (strcmp(first(&a, &b, NOW), "b") == 0)
        ;
    mr_latency_observe(&a, 10);
    for (int i = 0; i < 10; i++)
        assert_string_equal(first(&a, &b, NOW), "a");
}

/* The fastest replica is asked freely, even while on probation: its peers are slower. */
static void the_fastest_needs_no_probe(void **state)
{
    (void)state;
    mr_latency a = {0}, b = {0};
    learn(&a, 300, 40);
    learn(&b, 10, 40);
    assert_string_equal(first(&a, &b, NOW), "b"); /* a passed over */
    learn(&b, 2000, 40);                           /* b turns slower than a ever was */
    for (int i = 0; i < 10; i++)
        assert_string_equal(first(&a, &b, NOW), "a");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_estimate_follows_answers),
        cmocka_unit_test(a_slow_replica_goes_last),
        cmocka_unit_test(one_probe_at_a_time),
        cmocka_unit_test(a_fast_probe_ends_the_probation),
        cmocka_unit_test(the_fastest_needs_no_probe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
