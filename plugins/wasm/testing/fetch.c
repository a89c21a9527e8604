/*
 * fetch.c: a TEST-ONLY component that makes one outbound request.
 *   ?host=127.0.0.1:8080&path=/x  GETs http://<host><path> and answers
 *                                 200 "upstream <status>: <body>"
 *   when the host refuses it (not on the module's allow list), or the
 *   request fails, it answers 502 "refused: error code <n>".
 */
#include <stdio.h>
#include <string.h>

#include "respond.h"

/* Reads at most cap-1 bytes of the incoming body into out (NUL-ended). */
static void read_body(wasi_http_types_borrow_incoming_response_t resp, char *out, size_t cap) {
    out[0] = '\0';
    wasi_http_types_own_incoming_body_t body;
    if (!wasi_http_types_method_incoming_response_consume(resp, &body)) return;
    wasi_http_types_own_input_stream_t stream;
    if (wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(body), &stream)) {
        size_t len = 0;
        for (;;) {
            module_list_u8_t chunk;
            wasi_io_streams_stream_error_t err;
            if (!wasi_io_streams_method_input_stream_blocking_read(wasi_io_streams_borrow_input_stream(stream),
                                                                  4096, &chunk, &err))
                break;
            size_t take = chunk.len < cap - 1 - len ? chunk.len : cap - 1 - len;
            memcpy(out + len, chunk.ptr, take);
            len += take;
            module_list_u8_free(&chunk);
        }
        out[len] = '\0';
        wasi_io_streams_input_stream_drop_own(stream);
    }
    wasi_http_types_incoming_body_drop_own(body);
}

void exports_wasi_http_incoming_handler_handle(exports_wasi_http_incoming_handler_own_incoming_request_t request,
                                               exports_wasi_http_incoming_handler_own_response_outparam_t response_out) {
    char host[128], path[256], text[1024];
    wasi_http_types_borrow_incoming_request_t req = wasi_http_types_borrow_incoming_request(request);
    query_value(req, "host", "", host, sizeof host);
    query_value(req, "path", "/", path, sizeof path);
    wasi_http_types_incoming_request_drop_own(request);

    wasi_http_types_own_outgoing_request_t out =
        wasi_http_types_constructor_outgoing_request(wasi_http_types_constructor_fields());
    wasi_http_types_borrow_outgoing_request_t b = wasi_http_types_borrow_outgoing_request(out);
    wasi_http_types_scheme_t scheme = {.tag = WASI_HTTP_TYPES_SCHEME_HTTP};
    wasi_http_types_method_outgoing_request_set_scheme(b, &scheme);
    module_string_t authority = {(uint8_t *)host, strlen(host)};
    wasi_http_types_method_outgoing_request_set_authority(b, &authority);
    module_string_t pq = {(uint8_t *)path, strlen(path)};
    wasi_http_types_method_outgoing_request_set_path_with_query(b, &pq);

    wasi_http_types_own_future_incoming_response_t future;
    wasi_http_types_error_code_t code;
    if (!wasi_http_outgoing_handler_handle(out, NULL, &future, &code)) {
        snprintf(text, sizeof text, "refused: error code %d\n", code.tag);
        respond_text(response_out, 502, text);
        return;
    }
    wasi_http_types_borrow_future_incoming_response_t fb = wasi_http_types_borrow_future_incoming_response(future);
    wasi_http_types_own_pollable_t ready = wasi_http_types_method_future_incoming_response_subscribe(fb);
    wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(ready));
    wasi_io_poll_pollable_drop_own(ready);

    wasi_http_types_result_result_own_incoming_response_error_code_void_t got;
    if (!wasi_http_types_method_future_incoming_response_get(fb, &got) || got.is_err) {
        respond_text(response_out, 502, "refused: no response\n");
    } else if (got.val.ok.is_err) {
        snprintf(text, sizeof text, "refused: error code %d\n", got.val.ok.val.err.tag);
        respond_text(response_out, 502, text);
    } else {
        wasi_http_types_own_incoming_response_t resp = got.val.ok.val.ok;
        char body[512];
        wasi_http_types_borrow_incoming_response_t rb = wasi_http_types_borrow_incoming_response(resp);
        read_body(rb, body, sizeof body);
        snprintf(text, sizeof text, "upstream %d: %s", wasi_http_types_method_incoming_response_status(rb), body);
        wasi_http_types_incoming_response_drop_own(resp);
        respond_text(response_out, 200, text);
    }
    wasi_http_types_future_incoming_response_drop_own(future);
}
