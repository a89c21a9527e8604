/*
 * hello.c: the smallest useful Troupe module in C (GET /hello/c).
 *
 * Answers "<greeting>, <name>! (via <user-agent>)" where the greeting comes
 * from the module's config, <name> from the `name` query parameter, and
 * <user-agent> from the request header. Build:
 *   cc -shared -fPIC -O2 -I plugins/include -o libhello_c.so hello.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "troupe_module.h"

typedef struct hello {
    const troupe_host *host;
    char greeting[64];
} hello;

static troupe_str str(const char *s) {
    troupe_str out = {(const uint8_t *)s, strlen(s)};
    return out;
}

static int eq(troupe_str a, const char *b) {
    size_t n = strlen(b);
    return a.len == n && memcmp(a.ptr, b, n) == 0;
}

/* The value of `key` in the raw query "a=1&b=2"; not percent-decoded. */
static troupe_str query_param(troupe_str query, const char *key) {
    troupe_str none = {NULL, 0};
    size_t klen = strlen(key), i = 0;
    while (i < query.len) {
        size_t end = i;
        while (end < query.len && query.ptr[end] != '&') end++;
        if (end - i > klen && memcmp(query.ptr + i, key, klen) == 0 && query.ptr[i + klen] == '=') {
            troupe_str v = {query.ptr + i + klen + 1, end - i - klen - 1};
            return v;
        }
        i = end + 1;
    }
    return none;
}

static troupe_str header(const troupe_request *req, const char *name) {
    troupe_str none = {NULL, 0};
    for (size_t i = 0; i < req->headers_len; i++)
        if (eq(req->headers[i].name, name)) return req->headers[i].value;
    return none;
}

static int32_t init(const troupe_host *host, troupe_str config, void **instance) {
    hello *h = calloc(1, sizeof *h);
    if (!h) return TROUPE_ERROR;
    h->host = host;
    size_t n = config.len < sizeof h->greeting - 1 ? config.len : sizeof h->greeting - 1;
    if (n) memcpy(h->greeting, config.ptr, n);
    else strcpy(h->greeting, "Hello");
    *instance = h;
    host->log(host->ctx, TROUPE_LOG_INFO, str("hello_c ready"));
    return TROUPE_OK;
}

static int32_t handle(void *instance, const troupe_request *req, troupe_response *resp) {
    hello *h = instance;
    troupe_str name = query_param(req->query, "name");
    troupe_str agent = header(req, "user-agent");
    char body[512];
    int n = snprintf(body, sizeof body, "%s, %.*s! (via %.*s)\n", h->greeting,
                     (int)(name.len ? name.len : 5), name.len ? (const char *)name.ptr : "world",
                     (int)(agent.len ? agent.len : 7), agent.len ? (const char *)agent.ptr : "unknown");
    if (n < 0) return TROUPE_ERROR;
    if ((size_t)n >= sizeof body) n = sizeof body - 1;
    h->host->set_status(resp, 200);
    h->host->add_header(resp, str("content-type"), str("text/plain; charset=utf-8"));
    troupe_str b = {(const uint8_t *)body, (size_t)n};
    h->host->append_body(resp, b);
    return TROUPE_OK;
}

static void shutdown(void *instance) {
    free(instance);
}

static const troupe_module descriptor = {
    .abi_version = TROUPE_ABI_VERSION,
    .name = "hello_c",
    .init = init,
    .handle = handle,
    .shutdown = shutdown,
};

const troupe_module *troupe_module_entry(void) {
    return &descriptor;
}
