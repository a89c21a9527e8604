/*
 * kv_fill.c: a TEST-ONLY module that writes the shared store on request,
 * to prove each module's store quota (`kv` in its config).
 *
 * GET ...?key=K&bytes=N   stores N bytes under K: 200 "stored", or 507
 *                         "refused <code>" with kv_set's return code
 *                         (TROUPE_KV_FULL past the quota)
 * GET ...?key=K           answers K's length, or 404 when it is absent
 * Works in the server's process and under Process isolation alike.
 */
#include <stdio.h>
#include <stdlib.h>

#include "troupe_module.h"

static const troupe_host *host_table;

static int32_t init(const troupe_host *host, troupe_str config, void **instance) {
    (void)config;
    host_table = host;
    *instance = NULL;
    return TROUPE_OK;
}

static void answer(troupe_response *resp, uint16_t status, const char *text, size_t len) {
    host_table->set_status(resp, status);
    host_table->append_body(resp, (troupe_str){(const uint8_t *)text, len});
}

static int32_t handle(void *instance, const troupe_request *req, troupe_response *resp) {
    (void)instance;
    uint8_t key[64], digits[16];
    int64_t key_len = troupe_query_param(req->query, "key", key, sizeof key);
    if (key_len < 0 || key_len > (int64_t)sizeof key) {
        answer(resp, 400, "key?\n", 5);
        return TROUPE_OK;
    }
    troupe_str k = {key, (size_t)key_len};
    char text[64];
    int64_t n = troupe_query_param(req->query, "bytes", digits, sizeof digits - 1);
    if (n < 0 || n >= (int64_t)sizeof digits) {
        int64_t len = host_table->kv_get(host_table->ctx, k, NULL, 0);
        int w = snprintf(text, sizeof text, "%lld\n", (long long)len);
        answer(resp, len < 0 ? 404 : 200, text, (size_t)w);
        return TROUPE_OK;
    }
    digits[n] = '\0';
    size_t size = strtoul((const char *)digits, NULL, 10);
    uint8_t *value = calloc(size ? size : 1, 1);
    if (!value) return TROUPE_ERROR;
    int32_t rc = host_table->kv_set(host_table->ctx, k, (troupe_str){value, size});
    free(value);
    if (rc == TROUPE_OK) {
        answer(resp, 200, "stored\n", 7);
    } else {
        int w = snprintf(text, sizeof text, "refused %d\n", (int)rc);
        answer(resp, 507, text, (size_t)w);
    }
    return TROUPE_OK;
}

static void shutdown(void *instance) {
    (void)instance;
}

static const troupe_module descriptor = {
    .abi_version = TROUPE_ABI_VERSION,
    .name = "kv_fill",
    .init = init,
    .handle = handle,
    .shutdown = shutdown,
};

const troupe_module *troupe_module_entry(void) {
    return &descriptor;
}
