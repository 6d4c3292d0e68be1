/* test_config.c: defaults, the file, the environment, and their errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static char *write_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/miroir-config-test-%d", getpid());
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void defaults(void **state)
{
    (void)state;
    mr_config cfg;
    char err[256];
    assert_int_equal(mr_config_load(&cfg, NULL, err, sizeof err), 0);
    assert_string_equal(cfg.kafka_brokers, "127.0.0.1:19092");
    assert_int_equal(cfg.default_max_total_hits, 1000);
    assert_int_equal(cfg.node_count, 0);
}

static void file_then_environment(void **state)
{
    (void)state;
    mr_config cfg;
    char err[256];
    char *path = write_file("# comment\nnodes = n1=http://a:1, n2=http://b:2\nmax_body_bytes = 2048\n"
                            "kafka.socket.timeout.ms = 1234\n");
    setenv("MIROIR_MAX_BODY_BYTES", "4096", 1);
    assert_int_equal(mr_config_load(&cfg, path, err, sizeof err), 0);
    unsetenv("MIROIR_MAX_BODY_BYTES");
    assert_int_equal(cfg.node_count, 2);
    assert_string_equal(cfg.nodes[1].id, "n2");
    assert_string_equal(cfg.nodes[1].url, "http://b:2");
    assert_non_null(mr_config_node(&cfg, "n1"));
    assert_null(mr_config_node(&cfg, "n9"));
    assert_int_equal(cfg.max_body_bytes, 4096);
    assert_int_equal(cfg.kafka_prop_count, 1);
    assert_string_equal(cfg.kafka_props[0].name, "socket.timeout.ms");
    unlink(path);
}

static void errors_name_the_key(void **state)
{
    (void)state;
    mr_config cfg;
    char err[256];
    char *path = write_file("nope = 1\n");
    assert_int_equal(mr_config_load(&cfg, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "nope"));
    path = write_file("max_body_bytes = 12x\n");
    assert_int_equal(mr_config_load(&cfg, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "max_body_bytes"));
    path = write_file("nodes = n1=http://a,n1=http://b\n");
    assert_int_equal(mr_config_load(&cfg, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "duplicate"));
    path = write_file("just words\n");
    assert_int_equal(mr_config_load(&cfg, path, err, sizeof err), -1);
    unlink(path);
    assert_int_equal(mr_config_load(&cfg, "/nonexistent/miroir.conf", err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(file_then_environment),
        cmocka_unit_test(errors_name_the_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
