/*
 * respond.h: small helpers over the wit-bindgen C bindings (gen/module.h)
 * for Troupe's C components: read a query parameter (decoded by the host),
 * send a text response (in one host call).
 */
#ifndef TROUPE_WASM_RESPOND_H
#define TROUPE_WASM_RESPOND_H

#include <string.h>

#include "module.h"

#ifndef TROUPE_CONTENT_TYPE
#define TROUPE_CONTENT_TYPE "text/plain; charset=utf-8"
#endif

/* The first value of the query parameter `name` of `req`, decoded by the
 * host (troupe:host/api query-param: the rules every Troupe module language
 * shares, so C, Rust, Lua and WebAssembly read the same value). True with
 * *out set when present: UTF-8, possibly with a NUL (from %00); free it
 * with module_string_free. False when absent. */
static inline bool query_param(wasi_http_types_borrow_incoming_request_t req, const char *name,
                               module_string_t *out) {
    module_string_t pq;
    if (!wasi_http_types_method_incoming_request_path_with_query(req, &pq)) return false;
    size_t at = 0;
    while (at < pq.len && pq.ptr[at] != '?') at++;
    bool found = false;
    if (at < pq.len) {
        /* Both borrowed for the call. */
        module_string_t query = {pq.ptr + at + 1, pq.len - at - 1};
        module_string_t key = {(uint8_t *)name, strlen(name)};
        found = troupe_host_api_query_param(&query, &key, out);
    }
    module_string_free(&pq);
    return found;
}

/* query_param as a C string in `out` (cut to cap - 1 bytes; a NUL in the
 * value ends it early); `fallback` when absent. */
static inline void query_value(wasi_http_types_borrow_incoming_request_t req, const char *key,
                               const char *fallback, char *out, size_t cap) {
    module_string_t value;
    if (query_param(req, key, &value)) {
        size_t n = value.len < cap - 1 ? value.len : cap - 1;
        memcpy(out, value.ptr, n);
        out[n] = '\0';
        module_string_free(&value);
    } else {
        strncpy(out, fallback, cap - 1);
        out[cap - 1] = '\0';
    }
}

/* Sends `status` with a text/plain body of `len` bytes, in one host call
 * (troupe:host/api respond): the same response as building it through
 * wasi:http's resources, which takes nine. */
static inline void respond_bytes(exports_wasi_http_incoming_handler_own_response_outparam_t out,
                                 uint16_t status, const uint8_t *text, size_t len) {
    const char *type = TROUPE_CONTENT_TYPE;
    module_tuple2_string_list_u8_t header = {
        .f0 = {(uint8_t *)"content-type", 12},
        .f1 = {(uint8_t *)type, strlen(type)},
    };
    module_list_tuple2_string_list_u8_t headers = {&header, 1};
    module_list_u8_t body = {(uint8_t *)text, len};
    troupe_host_api_respond(out, status, &headers, &body);
}

/* Sends `status` with a text/plain body. */
static inline void respond_text(exports_wasi_http_incoming_handler_own_response_outparam_t out,
                                uint16_t status, const char *text) {
    respond_bytes(out, status, (const uint8_t *)text, strlen(text));
}

#endif
