/* Unit tests for shared/h1.c: responses read byte by byte as they may arrive from a node. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "h1.h"

/* Feeds text to a fresh reader one byte at a time, as the slowest network would; returns the
 * state after the last byte, with the body (NUL-terminated) in body. */
static int read_bytewise(const char *text, int no_body, mr_h1_reader *rd, char *body, size_t body_cap)
{
    size_t n = strlen(text);
    char buf[4096];
    memset(rd, 0, sizeof *rd);
    int state = MR_H1_MORE;
    for (size_t i = 1; i <= n && state == MR_H1_MORE; i++) {
        buf[i - 1] = text[i - 1];
        state = mr_h1_read(rd, buf, i, no_body);
    }
    if (state == MR_H1_DONE) {
        assert_true(rd->body_len < body_cap);
        memcpy(body, buf + rd->head_len, rd->body_len);
        body[rd->body_len] = '\0';
    }
    return state;
}

static void a_length_framed_body_is_read_to_its_length(void **state)
{
    (void)state;
    mr_h1_reader rd;
    char body[256];
    assert_int_equal(read_bytewise("HTTP/1.1 200 OK\r\ncontent-length: 7\r\ncontent-type: application/json\r\n\r\n{\"a\":1}",
                                   0, &rd, body, sizeof body), MR_H1_DONE);
    assert_int_equal(rd.status, 200);
    assert_true(rd.keep_alive);
    assert_string_equal(body, "{\"a\":1}");
}

static void a_chunked_body_is_decoded_in_place(void **state)
{
    (void)state;
    mr_h1_reader rd;
    char body[256];
    const char *text = "HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "4\r\n{\"ta\r\nA;ext=1\r\nskUid\":12}\r\n0\r\nX-Trailer: y\r\n\r\n";
    assert_int_equal(read_bytewise(text, 0, &rd, body, sizeof body), MR_H1_DONE);
    assert_int_equal(rd.status, 202);
    assert_string_equal(body, "{\"taskUid\":12}");
    assert_int_equal(rd.scan, strlen(text));
}

static void a_body_without_length_runs_to_the_close(void **state)
{
    (void)state;
    char buf[128];
    const char *text = "HTTP/1.0 200 OK\r\n\r\nhello";
    mr_h1_reader rd = {0};
    memcpy(buf, text, strlen(text));
    assert_int_equal(mr_h1_read(&rd, buf, strlen(text), 0), MR_H1_MORE);
    assert_false(rd.keep_alive);
    assert_int_equal(mr_h1_closed(&rd, buf, strlen(text), 0), MR_H1_DONE);
    assert_int_equal(rd.body_len, 5);
    assert_memory_equal(buf + rd.head_len, "hello", 5);
}

static void a_body_cut_short_is_an_error(void **state)
{
    (void)state;
    char buf[128];
    const char *text = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel";
    mr_h1_reader rd = {0};
    memcpy(buf, text, strlen(text));
    assert_int_equal(mr_h1_read(&rd, buf, strlen(text), 0), MR_H1_MORE);
    assert_int_equal(mr_h1_closed(&rd, buf, strlen(text), 0), MR_H1_BAD);
    mr_h1_reader none = {0};
    assert_int_equal(mr_h1_closed(&none, buf, 0, 0), MR_H1_BAD);
}

static void no_body_after_head_204_or_interim_answers(void **state)
{
    (void)state;
    mr_h1_reader rd;
    char body[64];
    assert_int_equal(read_bytewise("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", 1, &rd, body, sizeof body), MR_H1_DONE);
    assert_int_equal(rd.body_len, 0);
    assert_int_equal(read_bytewise("HTTP/1.1 204 No Content\r\n\r\n", 0, &rd, body, sizeof body), MR_H1_DONE);
    assert_int_equal(read_bytewise("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
                                   0, &rd, body, sizeof body), MR_H1_DONE);
    assert_int_equal(rd.status, 201);
    assert_string_equal(body, "ok");
}

static void connection_close_ends_keep_alive(void **state)
{
    (void)state;
    mr_h1_reader rd;
    char body[64];
    assert_int_equal(read_bytewise("HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n", 0, &rd, body,
                                   sizeof body), MR_H1_DONE);
    assert_false(rd.keep_alive);
    assert_int_equal(read_bytewise("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", 0, &rd,
                                   body, sizeof body), MR_H1_DONE);
    assert_true(rd.keep_alive);
}

static void what_is_not_http_is_refused(void **state)
{
    (void)state;
    mr_h1_reader rd;
    char body[64];
    assert_int_equal(read_bytewise("SSH-2.0-OpenSSH\r\n\r\n", 0, &rd, body, sizeof body), MR_H1_BAD);
    assert_int_equal(read_bytewise("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", 0, &rd, body, sizeof body), MR_H1_BAD);
    assert_int_equal(read_bytewise("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 0, &rd, body,
                                   sizeof body), MR_H1_BAD);
    assert_int_equal(read_bytewise("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, &rd, body,
                                   sizeof body), MR_H1_BAD);
    assert_int_equal(read_bytewise("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n", 0, &rd, body,
                                   sizeof body), MR_H1_BAD);
}

static void request_heads_carry_what_was_asked(void **state)
{
    (void)state;
    char head[512];
    size_t n = mr_h1_head(head, sizeof head, "POST", "127.0.0.1:7700", "/indexes/a/search", "Authorization: Bearer k", 1,
                          NULL, 12, "req-1");
    assert_int_equal(n, strlen(head));
    assert_string_equal(head, "POST /indexes/a/search HTTP/1.1\r\nHost: 127.0.0.1:7700\r\nAuthorization: Bearer k\r\n"
                              "Content-Type: application/json\r\nContent-Length: 12\r\nX-Request-Id: req-1\r\n\r\n");
    n = mr_h1_head(head, sizeof head, "GET", "h:1", "/health", "", 0, NULL, 0, NULL);
    assert_string_equal(head, "GET /health HTTP/1.1\r\nHost: h:1\r\n\r\n");
    assert_int_equal(mr_h1_head(head, 20, "GET", "h:1", "/health", "", 0, NULL, 0, NULL), 0);
}

static void only_plain_literal_urls_are_taken(void **state)
{
    (void)state;
    char host[64];
    int port;
    const char *target;
    assert_int_equal(mr_h1_url("http://127.0.0.1:7701/indexes?limit=1", host, sizeof host, &port, &target), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 7701);
    assert_string_equal(target, "/indexes?limit=1");
    assert_int_equal(mr_h1_url("http://[::1]:9/x", host, sizeof host, &port, &target), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 9);
    assert_int_equal(mr_h1_url("http://10.0.0.2", host, sizeof host, &port, &target), 0);
    assert_int_equal(port, 80);
    assert_string_equal(target, "/");
    assert_int_equal(mr_h1_url("https://127.0.0.1:7700/", host, sizeof host, &port, &target), -1);
    assert_int_equal(mr_h1_url("http://node-1:7700/", host, sizeof host, &port, &target), -1);
    assert_int_equal(mr_h1_url("http://127.0.0.1:99999/", host, sizeof host, &port, &target), -1);
    assert_int_equal(mr_h1_url("http://127.0.0.1:7700?x", host, sizeof host, &port, &target), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_length_framed_body_is_read_to_its_length),
        cmocka_unit_test(a_chunked_body_is_decoded_in_place),
        cmocka_unit_test(a_body_without_length_runs_to_the_close),
        cmocka_unit_test(a_body_cut_short_is_an_error),
        cmocka_unit_test(no_body_after_head_204_or_interim_answers),
        cmocka_unit_test(connection_close_ends_keep_alive),
        cmocka_unit_test(what_is_not_http_is_refused),
        cmocka_unit_test(request_heads_carry_what_was_asked),
        cmocka_unit_test(only_plain_literal_urls_are_taken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
