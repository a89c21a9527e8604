/*
 * canary.c: middleware that steers canary traffic to its own upstream
 * group, as OpenResty's `set $upstream canary; proxy_pass http://$upstream`.
 *
 * On a route whose handler is Proxy(upstream: "app"), a request with the
 * header `x-canary: 1` goes to the group named by the module's config
 * ("canary" when the config is empty); every other request goes to the
 * route's own group. Build:
 *   cc -shared -fPIC -O2 -I plugins/include -o libcanary.so canary.c
 * and use it as `middleware: [Module("canary")]` (plugins/README.md, 7).
 */
#include <stdlib.h>
#include <string.h>

#include "troupe_module.h"

typedef struct canary {
    const troupe_host *host;
    size_t len;
    uint8_t group[128];
} canary;

static int32_t init(const troupe_host *host, troupe_str config, void **instance) {
    canary *c = calloc(1, sizeof *c);
    if (!c) return TROUPE_ERROR;
    c->host = host;
    if (config.len == 0) config = (troupe_str){(const uint8_t *)"canary", 6};
    if (config.len > sizeof c->group) {
        free(c);
        return TROUPE_ERROR;
    }
    memcpy(c->group, config.ptr, config.len);
    c->len = config.len;
    *instance = c;
    return TROUPE_OK;
}

static int32_t request_filter(void *instance, const troupe_request *req, troupe_response *resp) {
    canary *c = instance;
    for (size_t i = 0; i < req->headers_len; i++) {
        troupe_pair h = req->headers[i];
        if (h.name.len == 8 && memcmp(h.name.ptr, "x-canary", 8) == 0 && h.value.len == 1 &&
            h.value.ptr[0] == '1') {
            c->host->set_upstream(resp, (troupe_str){c->group, c->len});
            break;
        }
    }
    return TROUPE_OK; /* go on, to the chosen group or the route's */
}

static void shutdown(void *instance) {
    free(instance);
}

static const troupe_module descriptor = {
    .abi_version = TROUPE_ABI_VERSION,
    .name = "canary",
    .init = init,
    .request_filter = request_filter,
    .shutdown = shutdown,
};

const troupe_module *troupe_module_entry(void) {
    return &descriptor;
}
