/*
 * respond.h: small helpers over the wit-bindgen C bindings (gen/module.h)
 * for Troupe's C components: read the query, send a text response.
 */
#ifndef TROUPE_WASM_RESPOND_H
#define TROUPE_WASM_RESPOND_H

#include <string.h>

#include "module.h"

#ifndef TROUPE_CONTENT_TYPE
#define TROUPE_CONTENT_TYPE "text/plain; charset=utf-8"
#endif

/* Copies the value of `key=` in the request's query into out (NUL-ended,
 * not percent-decoded); leaves `fallback` when it is absent. */
static inline void query_value(wasi_http_types_borrow_incoming_request_t req, const char *key,
                               const char *fallback, char *out, size_t cap) {
    strncpy(out, fallback, cap - 1);
    out[cap - 1] = '\0';
    module_string_t pq;
    if (!wasi_http_types_method_incoming_request_path_with_query(req, &pq)) return;
    size_t klen = strlen(key);
    for (size_t i = 0; i + klen < pq.len; i++) {
        int at_start = i > 0 && (pq.ptr[i - 1] == '?' || pq.ptr[i - 1] == '&');
        if (at_start && memcmp(pq.ptr + i, key, klen) == 0 && pq.ptr[i + klen] == '=') {
            size_t start = i + klen + 1, end = start;
            while (end < pq.len && pq.ptr[end] != '&' && end - start < cap - 1) end++;
            memcpy(out, pq.ptr + start, end - start);
            out[end - start] = '\0';
            break;
        }
    }
    module_string_free(&pq);
}

/* Sends `status` with a text/plain body. */
static inline void respond_text(exports_wasi_http_incoming_handler_own_response_outparam_t out,
                                uint16_t status, const char *text) {
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
        module_list_u8_t bytes = {(uint8_t *)text, strlen(text)};
        wasi_io_streams_stream_error_t err;
        wasi_io_streams_method_output_stream_blocking_write_and_flush(wasi_io_streams_borrow_output_stream(stream), &bytes, &err);
        wasi_io_streams_output_stream_drop_own(stream);
    }
    wasi_http_types_error_code_t err;
    wasi_http_types_static_outgoing_body_finish(body, NULL, &err);
}

#endif
