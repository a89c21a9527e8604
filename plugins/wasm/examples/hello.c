/*
 * hello.c: GET /hello/wasm, a wasi:http/proxy component written in C.
 *
 * Answers "Hello from WebAssembly, <name>! (previous: <last>)" where <name>
 * is the `name` query parameter ("world" when absent), decoded by the host's
 * troupe:host/api query-param as every module language decodes it, and
 * <last> the name the previous request used, kept in Troupe's shared
 * key-value store through the same import: the store native and Lua modules
 * use too. Bindings: ../gen (wit-bindgen c, committed). Build:
 * plugins/build.sh, or plugins/wasm/build-component.sh hello.c hello.wasm.
 */
#include <stdlib.h>
#include <string.h>

#include "respond.h"

#define LAST_KEY "hello_wasm.last_name"

/* Appends `len` bytes at *at. */
static void put(uint8_t *buf, size_t *at, const void *bytes, size_t len) {
    memcpy(buf + *at, bytes, len);
    *at += len;
}

void exports_wasi_http_incoming_handler_handle(exports_wasi_http_incoming_handler_own_incoming_request_t request,
                                               exports_wasi_http_incoming_handler_own_response_outparam_t response_out) {
    module_string_t name;
    if (!query_param(wasi_http_types_borrow_incoming_request(request), "name", &name))
        module_string_dup(&name, "world");
    wasi_http_types_incoming_request_drop_own(request);

    module_string_t key;
    module_string_dup(&key, LAST_KEY);
    module_list_u8_t stored, previous = {(uint8_t *)"none", 4};
    bool had = troupe_host_api_kv_get(&key, &stored);
    if (had) previous = stored;
    module_list_u8_t value = {name.ptr, name.len};
    module_string_t refused;
    /* Refused when this module holds its `kv` quota: the greeting goes on,
     * only the next request's "previous" misses this name. */
    if (!troupe_host_api_kv_set(&key, &value, &refused)) module_string_free(&refused);
    module_string_free(&key);

    module_string_t metric;
    module_string_dup(&metric, "greetings");
    troupe_host_api_metric(&metric, 1);
    module_string_free(&metric);

    /* By length, not printf: a decoded name may hold a NUL (%00). */
    static const char before[] = "Hello from WebAssembly, ", middle[] = "! (previous: ", after[] = ")\n";
    size_t len = 0, cap = sizeof before + name.len + sizeof middle + previous.len + sizeof after;
    uint8_t *body = malloc(cap);
    if (body) {
        put(body, &len, before, sizeof before - 1);
        put(body, &len, name.ptr, name.len);
        put(body, &len, middle, sizeof middle - 1);
        put(body, &len, previous.ptr, previous.len);
        put(body, &len, after, sizeof after - 1);
        respond_bytes(response_out, 200, body, len);
        free(body);
    } else {
        respond_text(response_out, 500, "out of memory\n");
    }
    if (had) module_list_u8_free(&stored);
    module_string_free(&name);
}
