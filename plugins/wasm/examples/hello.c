/*
 * hello.c: GET /hello/wasm, a wasi:http/proxy component written in C.
 *
 * Answers "Hello from WebAssembly, <name>! (previous: <last>)" where <name>
 * is the `name` query parameter and <last> the name the previous request
 * used, kept in Troupe's shared key-value store through the
 * troupe:host/api import: the store native and Lua modules use too.
 * Bindings: ../gen (wit-bindgen c, committed). Build: plugins/build.sh.
 */
#include <stdio.h>
#include <string.h>

#include "respond.h"

#define LAST_KEY "hello_wasm.last_name"

void exports_wasi_http_incoming_handler_handle(exports_wasi_http_incoming_handler_own_incoming_request_t request,
                                               exports_wasi_http_incoming_handler_own_response_outparam_t response_out) {
    char name[64];
    query_value(wasi_http_types_borrow_incoming_request(request), "name", "world", name, sizeof name);
    wasi_http_types_incoming_request_drop_own(request);

    module_string_t key;
    module_string_dup(&key, LAST_KEY);
    char last[64] = "none";
    module_list_u8_t previous;
    if (troupe_host_api_kv_get(&key, &previous)) {
        size_t n = previous.len < sizeof last - 1 ? previous.len : sizeof last - 1;
        memcpy(last, previous.ptr, n);
        last[n] = '\0';
        module_list_u8_free(&previous);
    }
    module_list_u8_t value = {(uint8_t *)name, strlen(name)};
    troupe_host_api_kv_set(&key, &value);
    module_string_free(&key);

    module_string_t metric;
    module_string_dup(&metric, "greetings");
    troupe_host_api_metric(&metric, 1);
    module_string_free(&metric);

    char body[256];
    snprintf(body, sizeof body, "Hello from WebAssembly, %s! (previous: %s)\n", name, last);
    respond_text(response_out, 200, body);
}
