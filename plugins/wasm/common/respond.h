/*
 * respond.h: small helpers over the wit-bindgen C bindings (gen/module.h)
 * for Troupe's C components: read a query parameter (decoded by the host),
 * send a text response.
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

/* Sends `status` with a text/plain body of `len` bytes. */
static inline void respond_bytes(exports_wasi_http_incoming_handler_own_response_outparam_t out,
                                 uint16_t status, const uint8_t *text, size_t len) {
    /* One host call for the headers (fields.from-list), not two. */
    const char *type = TROUPE_CONTENT_TYPE;
    wasi_http_types_tuple2_field_name_field_value_t entry = {
        .f0 = {(uint8_t *)"content-type", 12},
        .f1 = {(uint8_t *)type, strlen(type)},
    };
    wasi_http_types_list_tuple2_field_name_field_value_t list = {&entry, 1};
    wasi_http_types_own_fields_t headers;
    wasi_http_types_header_error_t herr;
    if (!wasi_http_types_static_fields_from_list(&list, &headers, &herr)) headers = wasi_http_types_constructor_fields();
    wasi_http_types_own_outgoing_response_t response = wasi_http_types_constructor_outgoing_response(headers);
    wasi_http_types_method_outgoing_response_set_status_code(wasi_http_types_borrow_outgoing_response(response), status);
    wasi_http_types_own_outgoing_body_t body;
    wasi_http_types_method_outgoing_response_body(wasi_http_types_borrow_outgoing_response(response), &body);
    wasi_http_types_result_own_outgoing_response_error_code_t result = {.is_err = false};
    result.val.ok = response;
    wasi_http_types_static_response_outparam_set(out, &result);

    wasi_http_types_own_output_stream_t stream;
    if (wasi_http_types_method_outgoing_body_write(wasi_http_types_borrow_outgoing_body(body), &stream)) {
        module_list_u8_t bytes = {(uint8_t *)text, len};
        wasi_io_streams_stream_error_t err;
        wasi_io_streams_method_output_stream_blocking_write_and_flush(wasi_io_streams_borrow_output_stream(stream), &bytes, &err);
        wasi_io_streams_output_stream_drop_own(stream);
    }
    wasi_http_types_error_code_t err;
    wasi_http_types_static_outgoing_body_finish(body, NULL, &err);
}

/* Sends `status` with a text/plain body. */
static inline void respond_text(exports_wasi_http_incoming_handler_own_response_outparam_t out,
                                uint16_t status, const char *text) {
    respond_bytes(out, status, (const uint8_t *)text, strlen(text));
}

#endif
