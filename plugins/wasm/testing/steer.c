/*
 * steer.c: TEST ONLY. A component used as middleware on a Proxy(..) route
 * (tests/it/upstream_choice.rs): `x-upstream: NAME` sends the request to
 * the upstream group NAME (troupe:host/api set-upstream, then pass);
 * `x-deny: 1` answers 403 here; anything else goes on to the route's own
 * group (pass alone).
 */
#include <string.h>

#include "respond.h"

/* The first value of the header `name` (lower case) as a C string in
 * `out` (cut to cap - 1 bytes); false when absent. */
static bool header(wasi_http_types_borrow_incoming_request_t req, const char *name, char *out,
                   size_t cap) {
    wasi_http_types_own_headers_t headers = wasi_http_types_method_incoming_request_headers(req);
    wasi_http_types_field_name_t key = {(uint8_t *)name, strlen(name)};
    wasi_http_types_list_field_value_t values;
    wasi_http_types_method_fields_get(wasi_http_types_borrow_fields(headers), &key, &values);
    bool found = values.len > 0;
    if (found) {
        size_t n = values.ptr[0].len < cap - 1 ? values.ptr[0].len : cap - 1;
        memcpy(out, values.ptr[0].ptr, n);
        out[n] = '\0';
    }
    wasi_http_types_list_field_value_free(&values);
    wasi_http_types_fields_drop_own(headers);
    return found;
}

void exports_wasi_http_incoming_handler_handle(exports_wasi_http_incoming_handler_own_incoming_request_t request,
                                               exports_wasi_http_incoming_handler_own_response_outparam_t response_out) {
    wasi_http_types_borrow_incoming_request_t req = wasi_http_types_borrow_incoming_request(request);
    char group[128], deny[8];
    bool deny_it = header(req, "x-deny", deny, sizeof deny) && strcmp(deny, "1") == 0;
    bool steer = header(req, "x-upstream", group, sizeof group);
    wasi_http_types_incoming_request_drop_own(request);
    if (deny_it) {
        respond_text(response_out, 403, "denied by steer.c\n");
        return;
    }
    if (steer) {
        module_string_t name = {(uint8_t *)group, strlen(group)};
        troupe_host_api_set_upstream(&name);
    }
    troupe_host_api_pass(response_out);
}
