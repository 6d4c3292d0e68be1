/* Tests of shared/meili.c's own client (mr_http_set_own_client) against a small HTTP server on a
 * loopback socket in this process, scripted by path to do what a node, or the network, may do:
 * answer by length or in chunks, close an idle connection, answer never, or refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "meili.h"

#define MAX_CONNS 64

typedef struct server {
    int listen_fd;
    int port;
    atomic_int stop;
    atomic_int accepted;
    atomic_int requests;
    pthread_t thread;
    pthread_t conn_threads[MAX_CONNS];
    int conn_fds[MAX_CONNS];
    int conn_count;
} server;

typedef struct conn_arg {
    server *srv;
    int fd;
} conn_arg;

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* Serves one connection's requests until the peer closes, the script says to close, or stop. */
static void *serve_conn(void *p)
{
    conn_arg *a = p;
    server *srv = a->srv;
    int fd = a->fd;
    free(a);
    size_t cap = 4 << 20, len = 0;
    char *buf = malloc(cap);
    while (!atomic_load(&srv->stop)) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end)
            continue;
        size_t head = (size_t)(end - buf) + 4, body = 0;
        char *cl = strcasestr(buf, "content-length:");
        if (cl && cl < end)
            body = strtoul(cl + 15, NULL, 10);
        if (len < head + body)
            continue;
        atomic_fetch_add(&srv->requests, 1);
        char path[256] = "";
        sscanf(buf, "%*s %255s", path);
        char out[512];
        int close_after = 0;
        if (!strcmp(path, "/len") || !strcmp(path, "/len-then-close")) {
            send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 43);
            close_after = !strcmp(path, "/len-then-close");
        } else if (!strcmp(path, "/chunked")) {
            const char *r = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n5\r\n\":42}\r\n0\r\n\r\n";
            send_all(fd, r, strlen(r));
        } else if (!strcmp(path, "/to-close")) {
            const char *r = "HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n{\"code\":\"x\"}";
            send_all(fd, r, strlen(r));
            close_after = 1;
        } else if (!strcmp(path, "/echo")) {
            int k = snprintf(out, sizeof out, "HTTP/1.1 201 Created\r\nContent-Length: %zu\r\n\r\n", body);
            send_all(fd, out, (size_t)k);
            send_all(fd, buf + head, body);
        } else if (!strcmp(path, "/auth")) {
            char *h = strcasestr(buf, "authorization: ");
            char *eol = h ? strstr(h, "\r\n") : NULL;
            size_t n_auth = h ? (size_t)(eol - h - 15) : 0;
            int k = snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%.*s", n_auth, (int)n_auth,
                             h ? h + 15 : "");
            send_all(fd, out, (size_t)k);
        } /* "/silent": no answer at all */
        memmove(buf, buf + head + body, len - head - body);
        len -= head + body;
        if (close_after)
            break;
    }
    close(fd);
    free(buf);
    return NULL;
}

static void *serve(void *p)
{
    server *srv = p;
    while (!atomic_load(&srv->stop)) {
        struct pollfd pfd = {.fd = srv->listen_fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int fd = accept(srv->listen_fd, NULL, NULL);
        if (fd < 0 || srv->conn_count == MAX_CONNS) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        atomic_fetch_add(&srv->accepted, 1);
        conn_arg *a = malloc(sizeof *a);
        a->srv = srv;
        a->fd = fd;
        pthread_create(&srv->conn_threads[srv->conn_count++], NULL, serve_conn, a);
    }
    return NULL;
}

/* A loopback port below the ephemeral range, the first of a few that is free. */
static int listen_loopback(int *port)
{
    for (int p = 31850; p < 31870; p++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (!bind(fd, (struct sockaddr *)&a, sizeof a) && !listen(fd, 64)) {
            *port = p;
            return fd;
        }
        close(fd);
    }
    return -1;
}

static int setup(void **state)
{
    server *srv = calloc(1, sizeof *srv);
    srv->listen_fd = listen_loopback(&srv->port);
    if (srv->listen_fd < 0) {
        free(srv);
        return -1;
    }
    pthread_create(&srv->thread, NULL, serve, srv);
    *state = srv;
    return 0;
}

static int teardown(void **state)
{
    server *srv = *state;
    atomic_store(&srv->stop, 1);
    pthread_join(srv->thread, NULL);
    for (int i = 0; i < srv->conn_count; i++)
        pthread_join(srv->conn_threads[i], NULL);
    close(srv->listen_fd);
    free(srv);
    return 0;
}

static mr_http *own_client(long timeout_ms)
{
    mr_http *h = mr_http_new("secret", timeout_ms, 1000);
    mr_http_set_own_client(h, 1);
    return h;
}

static void get(mr_http *h, mr_http_req *r, const server *srv, const char *path)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", srv->port, path);
    mr_http_one(h, r, "GET", url, NULL, 0);
}

static void answers_by_length_reuse_the_connection(void **state)
{
    server *srv = *state;
    mr_http *h = own_client(5000);
    mr_http_req r = {0};
    for (int i = 0; i < 3; i++) {
        get(h, &r, srv, "/len");
        assert_int_equal(r.status, 200);
        assert_int_equal(r.resp_len, 5);
        assert_string_equal(r.resp, "hello");
    }
    get(h, &r, srv, "/auth");
    assert_string_equal(r.resp, "Bearer secret");
    assert_int_equal(atomic_load(&srv->accepted), 1);
    mr_http_req_reset(&r);
    mr_http_free(h);
}

static void a_chunked_answer_and_one_up_to_the_close(void **state)
{
    server *srv = *state;
    mr_http *h = own_client(5000);
    mr_http_req r = {0};
    get(h, &r, srv, "/chunked");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.resp, "{\"a\":42}");
    get(h, &r, srv, "/to-close");
    assert_int_equal(r.status, 404);
    assert_string_equal(r.resp, "{\"code\":\"x\"}");
    get(h, &r, srv, "/len"); /* the closed connection is not reused */
    assert_int_equal(r.status, 200);
    assert_int_equal(atomic_load(&srv->accepted), 2);
    mr_http_req_reset(&r);
    mr_http_free(h);
}

static void a_connection_closed_while_idle_is_replaced_once(void **state)
{
    server *srv = *state;
    mr_http *h = own_client(5000);
    mr_http_req r = {0};
    get(h, &r, srv, "/len-then-close");
    assert_int_equal(r.status, 200);
    usleep(100 * 1000); /* the server's close has reached this side */
    get(h, &r, srv, "/len");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.resp, "hello");
    assert_int_equal(atomic_load(&srv->accepted), 2);
    assert_int_equal(atomic_load(&srv->requests), 2); /* each request reached the server once */
    mr_http_req_reset(&r);
    mr_http_free(h);
}

static void a_large_body_goes_and_comes_back_whole(void **state)
{
    server *srv = *state;
    mr_http *h = own_client(10000);
    size_t n = 3 << 20;
    char *body = malloc(n);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)('a' + i % 26);
    mr_http_req r = {0};
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", srv->port);
    mr_http_one(h, &r, "POST", url, body, n);
    assert_int_equal(r.status, 201);
    assert_int_equal(r.resp_len, n);
    assert_memory_equal(r.resp, body, n);
    free(body);
    mr_http_req_reset(&r);
    mr_http_free(h);
}

static void requests_in_one_flight_run_side_by_side(void **state)
{
    server *srv = *state;
    mr_http *h = own_client(2000);
    mr_http_req reqs[6] = {0};
    const char *paths[6] = {"/len", "/chunked", "/len", "/silent", "/echo", "/len"};
    for (int i = 0; i < 6; i++) {
        reqs[i].method = "POST";
        snprintf(reqs[i].url, sizeof reqs[i].url, "http://127.0.0.1:%d%s", srv->port, paths[i]);
        reqs[i].body = "{}";
        reqs[i].body_len = 2;
        reqs[i].timeout_ms = i == 3 ? 300 : 0;
    }
    mr_http_run(h, reqs, 6);
    assert_string_equal(reqs[0].resp, "hello");
    assert_string_equal(reqs[1].resp, "{\"a\":42}");
    assert_int_equal(reqs[3].status, 0); /* timed out: the others did not wait for it */
    assert_false(reqs[3].never_sent);
    assert_true(reqs[3].elapsed_ms >= 290 && reqs[3].elapsed_ms < 1900); /* its own 300 ms, not the client's 2 s */
    assert_string_equal(reqs[4].resp, "{}");
    assert_int_equal(reqs[5].status, 200);
    for (int i = 0; i < 6; i++)
        mr_http_req_reset(&reqs[i]);
    mr_http_free(h);
}

static void a_canceled_request_leaves_its_connection(void **state)
{
    server *srv = *state;
    mr_http *h = own_client(5000);
    mr_http_flight *f = mr_http_flight_new(h);
    mr_http_req slow = {.method = "GET"}, fast = {.method = "GET"};
    snprintf(slow.url, sizeof slow.url, "http://127.0.0.1:%d/silent", srv->port);
    snprintf(fast.url, sizeof fast.url, "http://127.0.0.1:%d/len", srv->port);
    mr_http_flight_add(f, &slow);
    mr_http_flight_add(f, &fast);
    assert_ptr_equal(mr_http_flight_next(f, 2000), &fast);
    assert_null(mr_http_flight_next(f, 50)); /* the silent one is still out */
    assert_int_equal(mr_http_flight_cancel(f, &slow), 1);
    assert_string_equal(slow.curl_error, "canceled");
    assert_int_equal(mr_http_flight_running(f), 0);
    mr_http_flight_free(f);
    mr_http_req r = {0};
    get(h, &r, srv, "/len"); /* on the fast one's connection, not the canceled one's */
    assert_int_equal(r.status, 200);
    assert_int_equal(atomic_load(&srv->accepted), 2);
    mr_http_req_reset(&r);
    mr_http_req_reset(&slow);
    mr_http_req_reset(&fast);
    mr_http_free(h);
}

static void a_refused_connection_was_never_sent(void **state)
{
    server *srv = *state;
    mr_http *h = own_client(2000);
    mr_http_req r = {0};
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/len", srv->port == 31869 ? 31868 : srv->port + 1);
    mr_http_one(h, &r, "GET", url, NULL, 0);
    assert_int_equal(r.status, 0);
    assert_true(r.never_sent);
    assert_non_null(strstr(r.curl_error, "Failed to connect"));
    mr_http_req_reset(&r);
    mr_http_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(answers_by_length_reuse_the_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(a_chunked_answer_and_one_up_to_the_close, setup, teardown),
        cmocka_unit_test_setup_teardown(a_connection_closed_while_idle_is_replaced_once, setup, teardown),
        cmocka_unit_test_setup_teardown(a_large_body_goes_and_comes_back_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(requests_in_one_flight_run_side_by_side, setup, teardown),
        cmocka_unit_test_setup_teardown(a_canceled_request_leaves_its_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(a_refused_connection_was_never_sent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
