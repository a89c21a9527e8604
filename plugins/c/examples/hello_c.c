/*
 * hello.c: the smallest useful Troupe module in C (GET /hello/c).
 *
 * Answers "<greeting>, <name>! (via <user-agent>)" where the greeting comes
 * from the module's config, <name> from the `name` query parameter (decoded
 * by troupe_query_param, as every module language decodes it; "world" when
 * absent), and <user-agent> from the request header. Build:
 *   cc -shared -fPIC -O2 -I plugins/include -o libhello_c.so hello.c
 */
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
    const troupe_host *host = h->host;
    uint8_t buf[256];
    troupe_str name = str("world");
    int64_t n = troupe_query_param(req->query, "name", buf, sizeof buf);
    if (n > (int64_t)sizeof buf) {
        host->set_status(resp, 414);
        host->append_body(resp, str("name too long\n"));
        return TROUPE_OK;
    }
    if (n >= 0) {
        name.ptr = buf;
        name.len = (size_t)n;
    }
    troupe_str agent = header(req, "user-agent");
    if (agent.len == 0) agent = str("unknown");
    host->set_status(resp, 200);
    host->add_header(resp, str("content-type"), str("text/plain; charset=utf-8"));
    /* Piece by piece, lengths and all: a decoded name may hold a NUL (%00),
     * which printf's %s would stop at. */
    host->append_body(resp, str(h->greeting));
    host->append_body(resp, str(", "));
    host->append_body(resp, name);
    host->append_body(resp, str("! (via "));
    host->append_body(resp, agent);
    host->append_body(resp, str(")\n"));
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
