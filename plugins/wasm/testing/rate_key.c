/*
 * rate_key.c: TEST ONLY. A component used as middleware
 * (tests/it/rate_key.rs) that chooses the request's rate-limit key
 * (troupe:host/api set-rate-key, then pass), for zones keyed by `Module`:
 * the value of `x-user` when the request has one, else the segment after
 * `/u/` in its path (`/u/alice/...` is "alice"), else none.
 */
#include <string.h>

#include "respond.h"

void exports_wasi_http_incoming_handler_handle(exports_wasi_http_incoming_handler_own_incoming_request_t request,
                                               exports_wasi_http_incoming_handler_own_response_outparam_t response_out) {
    wasi_http_types_borrow_incoming_request_t req = wasi_http_types_borrow_incoming_request(request);
    wasi_http_types_own_headers_t headers = wasi_http_types_method_incoming_request_headers(req);
    wasi_http_types_field_name_t name = {(uint8_t *)"x-user", 6};
    wasi_http_types_list_field_value_t values;
    wasi_http_types_method_fields_get(wasi_http_types_borrow_fields(headers), &name, &values);
    if (values.len > 0) {
        module_list_u8_t key = {values.ptr[0].ptr, values.ptr[0].len};
        troupe_host_api_set_rate_key(&key);
    } else {
        module_string_t path;
        if (wasi_http_types_method_incoming_request_path_with_query(req, &path)) {
            if (path.len > 3 && memcmp(path.ptr, "/u/", 3) == 0) {
                size_t n = 0;
                while (3 + n < path.len && path.ptr[3 + n] != '/' && path.ptr[3 + n] != '?') n++;
                module_list_u8_t key = {path.ptr + 3, n};
                troupe_host_api_set_rate_key(&key);
            }
            module_string_free(&path);
        }
    }
    wasi_http_types_list_field_value_free(&values);
    wasi_http_types_fields_drop_own(headers);
    wasi_http_types_incoming_request_drop_own(request);
    troupe_host_api_pass(response_out);
}
