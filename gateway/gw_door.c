/* gw_door.c: the front door. The gateway accepts its connections itself and holds each one, at
 * the cost of a descriptor, until its client has sent a whole request head; only then does
 * libmicrohttpd get the socket, and a thread for it. So idle sockets and heads sent a byte at a
 * time hold no thread, and the door answers, itself, what should never reach a handler: bytes
 * that are not HTTP, heads too slow or too large, connections past max_connections. It only
 * peeks: libmicrohttpd reads the head from the socket as if it had come straight in. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "gw.h"
#include "head.h"
#include "util.h"

#define DOOR_HEAD_MAX 16384    /* libmicrohttpd's per-connection pool (32 KiB) must hold it too */
#define DOOR_LINGER_MS 2000    /* after an answer, what the client still sends is read and dropped */
#define DOOR_TICK_MS 200
#define DOOR_MAX_SOCKETS 65536 /* the table's size at most, whatever RLIMIT_NOFILE allows */
#define DOOR_RESERVED_FDS 512  /* kept for libmicrohttpd's connections' neighbours: nodes, Kafka */

enum door_state { DOOR_FREE, DOOR_WAITING, DOOR_LINGERING };

struct door_socket {
    enum door_state state;
    int64_t since_ms;      /* accepted (waiting) or answered (lingering) */
    int64_t first_byte_ms; /* 0 until the client sent something */
    struct sockaddr_in addr;
};

struct gw_door {
    gw *g;
    struct MHD_Daemon *mhd;
    int listen_fd, epoll_fd, spare_fd;
    struct door_socket *sockets; /* indexed by descriptor */
    int capacity;                /* descriptors the table covers */
    int highest;                 /* the highest descriptor held so far */
    int held, max_held;
    pthread_t thread;
    atomic_int stopping;
};

static const char *reason_phrase(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

void gw_answer_raw(int fd, const mr_error *e)
{
    json_t *body = mr_error_json(e);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char buf[1024];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     e->status, reason_phrase(e->status), text ? strlen(text) : 0, text ? text : "");
    free(text);
    if (n > 0 && (size_t)n < sizeof buf) /* the socket's buffer is empty: a short answer is sent whole */
        (void)send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void forget(gw_door *door, int fd)
{
    epoll_ctl(door->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
    door->sockets[fd].state = DOOR_FREE;
    door->held--;
}

static void drop(gw_door *door, int fd)
{
    forget(door, fd);
    close(fd);
}

/* Answers e, then reads what the client still sends until it closes or DOOR_LINGER_MS pass:
 * closing with unread bytes would reset the connection and could destroy the answer in flight. */
static void answer_and_linger(gw_door *door, int fd, const mr_error *e)
{
    gw_answer_raw(fd, e);
    shutdown(fd, SHUT_WR);
    door->sockets[fd].state = DOOR_LINGERING;
    door->sockets[fd].since_ms = mr_now_ms();
}

static void refuse(gw_door *door, int fd, const char *code, const char *message)
{
    mr_error e;
    mr_error_set(&e, code, "%s", message);
    answer_and_linger(door, fd, &e);
}

static void hand_over(gw_door *door, int fd)
{
    gw *g = door->g;
    if (atomic_load(&g->connections) >= g->cfg->max_connections) {
        mr_error e;
        mr_error_set(&e, "miroir_too_many_connections",
                     "The gateway has reached max_connections (%ld) open connections; retry later.", g->cfg->max_connections);
        answer_and_linger(door, fd, &e);
        return;
    }
    struct sockaddr_in addr = door->sockets[fd].addr;
    forget(door, fd);
    /* on failure libmicrohttpd has closed the socket */
    if (MHD_add_connection(door->mhd, fd, (const struct sockaddr *)&addr, sizeof addr) != MHD_YES)
        mr_log("warn", "gateway", "libmicrohttpd refused a connection");
}

static void on_waiting_readable(gw_door *door, int fd, int hung_up)
{
    char head[DOOR_HEAD_MAX];
    ssize_t n = recv(fd, head, sizeof head, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !hung_up)
        return;
    if (n <= 0) {
        drop(door, fd);
        return;
    }
    if (!door->sockets[fd].first_byte_ms)
        door->sockets[fd].first_byte_ms = mr_now_ms();
    switch (mr_head_judge(head, (size_t)n, sizeof head)) {
    case MR_HEAD_COMPLETE:
        hand_over(door, fd);
        return;
    case MR_HEAD_NOT_HTTP:
        refuse(door, fd, "bad_request", "The gateway speaks HTTP/1.1 (no TLS, no HTTP/2): this is not an HTTP request.");
        return;
    case MR_HEAD_TOO_LARGE:
        refuse(door, fd, "miroir_head_too_large", "The request line and headers exceed 16384 bytes.");
        return;
    case MR_HEAD_PARTIAL:
        if (hung_up)
            refuse(door, fd, "bad_request", "The connection was closed in the middle of the request head.");
        return;
    }
}

static void on_lingering_readable(gw_door *door, int fd)
{
    char sink[16384];
    for (;;) {
        ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        drop(door, fd);
        return;
    }
}

static void accept_all(gw_door *door)
{
    for (;;) {
        struct sockaddr_in addr;
        socklen_t len = sizeof addr;
        int fd = accept4(door->listen_fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if ((errno == EMFILE || errno == ENFILE) && door->spare_fd >= 0) {
                /* out of descriptors: take the client off the queue so it learns at once, not
                 * after its own timeout, and keep the queue from spinning the loop */
                close(door->spare_fd);
                fd = accept(door->listen_fd, NULL, NULL);
                if (fd >= 0)
                    close(fd);
                door->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                continue;
            }
            return; /* EAGAIN, or an error of one client's */
        }
        if (fd >= door->capacity || door->held >= door->max_held) {
            close(fd);
            continue;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.fd = fd};
        if (epoll_ctl(door->epoll_fd, EPOLL_CTL_ADD, fd, &ev)) {
            close(fd);
            continue;
        }
        door->sockets[fd] = (struct door_socket){.state = DOOR_WAITING, .since_ms = mr_now_ms(), .addr = addr};
        door->held++;
        if (fd > door->highest)
            door->highest = fd;
        /* a head sent with the connection's first packet is already there: no edge will come */
        on_waiting_readable(door, fd, 0);
    }
}

/* Idle sockets close quietly after connection_timeout_s, as libmicrohttpd's do; a head begun
 * but not ended within header_timeout_ms gets a 408. */
static void expire(gw_door *door, int64_t now)
{
    const mr_config *cfg = door->g->cfg;
    for (int fd = 0; fd <= door->highest; fd++) {
        struct door_socket *s = &door->sockets[fd];
        if (s->state == DOOR_WAITING && !s->first_byte_ms && now - s->since_ms > cfg->connection_timeout_s * 1000)
            drop(door, fd);
        else if (s->state == DOOR_WAITING && s->first_byte_ms && now - s->first_byte_ms > cfg->header_timeout_ms)
            refuse(door, fd, "miroir_request_too_slow", "The request head did not arrive within header_timeout_ms.");
        else if (s->state == DOOR_LINGERING && now - s->since_ms > DOOR_LINGER_MS)
            drop(door, fd);
    }
}

static void *door_main(void *arg)
{
    gw_door *door = arg;
    struct epoll_event events[256];
    int64_t last_expiry = 0;
    while (!atomic_load(&door->stopping)) {
        int n = epoll_wait(door->epoll_fd, events, 256, DOOR_TICK_MS);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == door->listen_fd) {
                accept_all(door);
                continue;
            }
            int hung_up = (events[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
            if (door->sockets[fd].state == DOOR_WAITING)
                on_waiting_readable(door, fd, hung_up);
            else if (door->sockets[fd].state == DOOR_LINGERING)
                on_lingering_readable(door, fd);
        }
        int64_t now = mr_now_ms();
        if (now - last_expiry >= DOOR_TICK_MS) {
            expire(door, now);
            last_expiry = now;
        }
    }
    return NULL;
}

static int listen_on(const char *spec, char *err, size_t errlen)
{
    char host[128];
    snprintf(host, sizeof host, "%s", spec);
    char *colon = strrchr(host, ':');
    if (!colon) {
        snprintf(err, errlen, "gateway_listen: expected host:port, got '%s'", spec);
        return -1;
    }
    *colon = '\0';
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        snprintf(err, errlen, "gateway_listen: '%s' is not an IPv4 address", host);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) ||
        bind(fd, (struct sockaddr *)&addr, sizeof addr) || listen(fd, 4096)) {
        snprintf(err, errlen, "cannot listen on %s: %s", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

gw_door *gw_door_start(gw *g, struct MHD_Daemon *mhd, char *err, size_t errlen)
{
    int listen_fd = listen_on(g->cfg->gateway_listen, err, errlen);
    if (listen_fd < 0)
        return NULL;
    gw_door *door = mr_calloc(1, sizeof *door);
    door->g = g;
    door->mhd = mhd;
    door->listen_fd = listen_fd;
    struct rlimit lim = {0};
    getrlimit(RLIMIT_NOFILE, &lim);
    door->capacity = lim.rlim_cur > DOOR_MAX_SOCKETS ? DOOR_MAX_SOCKETS : (int)lim.rlim_cur;
    door->max_held = door->capacity - (int)g->cfg->max_connections - DOOR_RESERVED_FDS;
    if (door->max_held < 64)
        door->max_held = 64;
    door->sockets = mr_calloc((size_t)door->capacity, sizeof *door->sockets);
    door->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    door->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listen_fd};
    if (door->epoll_fd < 0 || epoll_ctl(door->epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev) ||
        pthread_create(&door->thread, NULL, door_main, door)) {
        snprintf(err, errlen, "the front door: %s", strerror(errno));
        if (door->epoll_fd >= 0)
            close(door->epoll_fd);
        close(listen_fd);
        if (door->spare_fd >= 0)
            close(door->spare_fd);
        free(door->sockets);
        free(door);
        return NULL;
    }
    return door;
}

void gw_door_stop(gw_door *door)
{
    if (!door)
        return;
    atomic_store(&door->stopping, 1);
    pthread_join(door->thread, NULL);
    for (int fd = 0; fd <= door->highest; fd++)
        if (door->sockets[fd].state != DOOR_FREE)
            close(fd);
    close(door->epoll_fd);
    close(door->listen_fd);
    if (door->spare_fd >= 0)
        close(door->spare_fd);
    free(door->sockets);
    free(door);
}
