/*
 * rate_key.c: TEST ONLY. Middleware that chooses the request's rate-limit
 * key (host->set_rate_key, for zones keyed by `Module`;
 * tests/it/rate_key.rs): the value of `x-user` when the request has one,
 * else the segment after `/u/` in the path (`/u/alice/...` is "alice"),
 * else none, and the request is not limited by such a zone.
 */
#include <string.h>

#include "troupe_module.h"

static const troupe_host *host;

static int32_t init(const troupe_host *h, troupe_str config, void **instance) {
    (void)config;
    /* A server before revision 2 has no set_rate_key. */
    if ((h->abi_version >> 16) < 2) return TROUPE_ERROR;
    host = h;
    *instance = NULL;
    return TROUPE_OK;
}

static int32_t request_filter(void *instance, const troupe_request *req, troupe_response *resp) {
    (void)instance;
    for (size_t i = 0; i < req->headers_len; i++) {
        troupe_pair h = req->headers[i];
        if (h.name.len == 6 && memcmp(h.name.ptr, "x-user", 6) == 0) {
            host->set_rate_key(resp, h.value);
            return TROUPE_OK;
        }
    }
    if (req->path.len > 3 && memcmp(req->path.ptr, "/u/", 3) == 0) {
        const uint8_t *start = req->path.ptr + 3;
        size_t n = 0;
        while (3 + n < req->path.len && start[n] != '/') n++;
        host->set_rate_key(resp, (troupe_str){start, n});
    }
    return TROUPE_OK;
}

static void shutdown(void *instance) {
    (void)instance;
}

static const troupe_module descriptor = {
    .abi_version = TROUPE_ABI_VERSION,
    .name = "rate_key",
    .init = init,
    .request_filter = request_filter,
    .shutdown = shutdown,
};

const troupe_module *troupe_module_entry(void) {
    return &descriptor;
}
