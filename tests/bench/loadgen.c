/* loadgen.c: a closed-loop HTTP load generator with keep-alive, for the benchmarks.
 *
 * C concurrent clients each send one search at a time, for a fixed duration, cycling through a
 * file of JSON search bodies (one per line). A "request" goes to one URL, or, with several
 * targets, to all of them in parallel and completes when the last answers: that is the floor
 * for a sharded search (S shard searches sent directly, in parallel). Prints one JSON line:
 * requests, errors, p50/p99/p99.9 in milliseconds, throughput per second. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_TARGETS 64
#define MAX_CLIENTS 256

struct client {
    CURL *handles[MAX_TARGETS];
    int outstanding;
    double started;
    size_t next_query;
    int failed;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static char **read_lines(const char *path, size_t *count)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char **lines = NULL, *line = NULL;
    size_t cap = 0, n = 0, len = 0;
    ssize_t got;
    while ((got = getline(&line, &len, f)) > 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        if (!got)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            lines = realloc(lines, cap * sizeof *lines);
        }
        lines[n++] = strdup(line);
    }
    free(line);
    fclose(f);
    *count = n;
    return lines;
}

int main(int argc, char **argv)
{
    const char *queries_path = NULL, *key = NULL;
    const char *targets[MAX_TARGETS];
    int target_count = 0, clients_n = 8;
    double duration_s = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--queries") == 0)
            queries_path = argv[i + 1];
        else if (strcmp(argv[i], "--url") == 0 && target_count < MAX_TARGETS)
            targets[target_count++] = argv[i + 1];
        else if (strcmp(argv[i], "--concurrency") == 0)
            clients_n = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--duration") == 0)
            duration_s = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--key") == 0)
            key = argv[i + 1];
    }
    if (!queries_path || !target_count || clients_n < 1 || clients_n > MAX_CLIENTS) {
        fprintf(stderr, "usage: miroir-loadgen --queries FILE --url SEARCH_URL [--url …] [--concurrency N] "
                        "[--duration S] [--key KEY]\n");
        return 2;
    }
    size_t query_count;
    char **queries = read_lines(queries_path, &query_count);
    if (!queries || !query_count) {
        fprintf(stderr, "miroir-loadgen: no queries in %s\n", queries_path);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)(clients_n * target_count + 8));
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    char auth[512];
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        headers = curl_slist_append(headers, auth);
    }
    struct client *clients = calloc((size_t)clients_n, sizeof *clients);
    size_t lat_cap = 1 << 16, lat_n = 0, errors = 0;
    double *lat = malloc(lat_cap * sizeof *lat);
    double start = now_ms(), end = start + duration_s * 1000;

    for (int c = 0; c < clients_n; c++) {
        clients[c].next_query = (size_t)c * 7919 % query_count;
        for (int t = 0; t < target_count; t++) {
            CURL *h = curl_easy_init();
            curl_easy_setopt(h, CURLOPT_URL, targets[t]);
            curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
            curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
            curl_easy_setopt(h, CURLOPT_PRIVATE, &clients[c]);
            curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
            curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
            clients[c].handles[t] = h;
        }
    }
    /* start every client */
    for (int c = 0; c < clients_n; c++) {
        struct client *cl = &clients[c];
        cl->started = now_ms();
        cl->failed = 0;
        for (int t = 0; t < target_count; t++) {
            curl_easy_setopt(cl->handles[t], CURLOPT_POSTFIELDS, queries[cl->next_query]);
            curl_multi_add_handle(multi, cl->handles[t]);
        }
        cl->outstanding = target_count;
    }
    int running = 1;
    while (running) {
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *h = msg->easy_handle;
            struct client *cl;
            curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&cl);
            long status = 0;
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
            if (msg->data.result != CURLE_OK || status != 200)
                cl->failed = 1;
            curl_multi_remove_handle(multi, h);
            if (--cl->outstanding > 0)
                continue;
            double t = now_ms();
            if (cl->failed)
                errors++;
            else {
                if (lat_n == lat_cap) {
                    lat_cap *= 2;
                    lat = realloc(lat, lat_cap * sizeof *lat);
                }
                lat[lat_n++] = t - cl->started;
            }
            if (t >= end)
                continue;
            cl->next_query = (cl->next_query + 1) % query_count;
            cl->started = t;
            cl->failed = 0;
            for (int k = 0; k < target_count; k++) {
                curl_easy_setopt(cl->handles[k], CURLOPT_POSTFIELDS, queries[cl->next_query]);
                curl_multi_add_handle(multi, cl->handles[k]);
            }
            cl->outstanding = target_count;
            running = 1;
        }
        if (running)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    double elapsed_s = (now_ms() - start) / 1000;
    qsort(lat, lat_n, sizeof *lat, cmp_double);
    double p50 = lat_n ? lat[lat_n / 2] : 0, p99 = lat_n ? lat[(size_t)(lat_n * 0.99)] : 0;
    double p999 = lat_n ? lat[(size_t)(lat_n * 0.999)] : 0;
    printf("{\"requests\": %zu, \"errors\": %zu, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, "
           "\"throughput\": %.1f}\n",
           lat_n, errors, p50, p99, p999, lat_n / elapsed_s);
    for (int c = 0; c < clients_n; c++)
        for (int t = 0; t < target_count; t++)
            curl_easy_cleanup(clients[c].handles[t]);
    curl_multi_cleanup(multi);
    curl_slist_free_all(headers);
    for (size_t i = 0; i < query_count; i++)
        free(queries[i]);
    free(queries);
    free(clients);
    free(lat);
    curl_global_cleanup();
    return 0;
}
