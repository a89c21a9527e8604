/*
 * bench_hello.c: a BENCHMARK module answering exactly what the core
 * `Return` hello answers ("Hello, World!\n", text/plain), so
 * benches/load/modules.sh compares the cost of the module call alone.
 */
#include "troupe_module.h"

static const troupe_host *host_table;

static int32_t init(const troupe_host *host, troupe_str config, void **instance) {
    (void)config;
    host_table = host;
    *instance = 0;
    return TROUPE_OK;
}

static int32_t handle(void *instance, const troupe_request *req, troupe_response *resp) {
    (void)instance;
    (void)req;
    troupe_str name = {(const uint8_t *)"content-type", 12};
    troupe_str value = {(const uint8_t *)"text/plain", 10};
    troupe_str body = {(const uint8_t *)"Hello, World!\n", 14};
    host_table->add_header(resp, name, value);
    host_table->append_body(resp, body);
    return TROUPE_OK;
}

static void shutdown(void *instance) {
    (void)instance;
}

static const troupe_module descriptor = {
    .abi_version = TROUPE_ABI_VERSION,
    .name = "bench_hello",
    .init = init,
    .handle = handle,
    .shutdown = shutdown,
};

const troupe_module *troupe_module_entry(void) {
    return &descriptor;
}
