/* gw_features.c: GET and PATCH /experimental-features.
 *
 * Clients switch features on before using them (the SDKs' multi-search fixtures turn on
 * `network`). The gateway offers none of Meilisearch's experimental features but one: `network`
 * is a flag it keeps and reports, because federated multi-search, which clients ask for with it,
 * works across the cluster's shards without it. Turning on any other feature is refused in
 * Meilisearch's error shape, never accepted and then ignored. */
#include <stdio.h>
#include <string.h>

#include "gw.h"

/* Meilisearch 1.21's features, in its order. */
static const char *const features[] = {"metrics", "logsRoute", "editDocumentsByFunction", "containsFilter", "network",
                                       "getTaskDocumentsRoute", "compositeEmbedders", "chatCompletions", "multimodal",
                                       "vectorStoreSetting"};
#define FEATURE_COUNT (sizeof features / sizeof features[0])
#define KEPT_FEATURE "network"

static json_t *current(gw *g)
{
    json_t *kept = mr_meta_singleton(g->meta, "features");
    json_t *out = json_object();
    for (size_t i = 0; i < FEATURE_COUNT; i++)
        json_object_set_new(out, features[i], json_boolean(json_is_true(json_object_get(kept, features[i]))));
    json_decref(kept);
    return out;
}

void gw_route_features_get(gw *g, const gw_request *req, gw_response *res)
{
    (void)req;
    gw_reply(res, 200, current(g));
}

static int known(const char *name)
{
    for (size_t i = 0; i < FEATURE_COUNT; i++)
        if (strcmp(features[i], name) == 0)
            return 1;
    return 0;
}

void gw_route_features_update(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err = {0};
    json_t *body = gw_body_object(req, &err);
    const char *name;
    json_t *v;
    json_object_foreach(body, name, v) {
        if (!known(name)) {
            mr_error_set(&err, "bad_request",
                         "Unknown field `%.100s`: expected one of `metrics`, `logsRoute`, `editDocumentsByFunction`, "
                         "`containsFilter`, `network`, `getTaskDocumentsRoute`, `compositeEmbedders`, `chatCompletions`, "
                         "`multimodal`, `vectorStoreSetting`",
                         name);
            break;
        }
        if (!json_is_boolean(v) && !json_is_null(v)) {
            mr_error_set(&err, "bad_request", "Invalid value type at `.%.100s`: expected a boolean", name);
            break;
        }
        if (json_is_true(v) && strcmp(name, KEPT_FEATURE) != 0) {
            mr_error_set(&err, "miroir_feature_unavailable",
                         "The experimental feature `%.100s` is not available through Miroir's gateway; only `network` "
                         "can be turned on. See docs/api-compatibility.md.",
                         name);
            break;
        }
    }
    if (!body || err.status) {
        gw_reply_error(res, &err);
        json_decref(body);
        return;
    }
    json_t *network = json_object_get(body, KEPT_FEATURE);
    if (network) {
        json_t *kept = json_pack("{s:b}", KEPT_FEATURE, json_is_true(network));
        int rc = mr_meta_put(g->meta, g->producer, "features", kept, 1, &err);
        json_decref(kept);
        if (rc) {
            gw_reply_error(res, &err);
            json_decref(body);
            return;
        }
    }
    json_decref(body);
    gw_reply(res, 200, current(g));
}
