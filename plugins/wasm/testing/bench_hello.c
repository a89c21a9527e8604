/*
 * bench_hello.c: a BENCHMARK component answering exactly what the core
 * `Return` hello answers, for benches/load/modules.sh.
 */
/* The same Content-Type as the benchmark's Return. */
#define TROUPE_CONTENT_TYPE "text/plain"
#include "respond.h"

void exports_wasi_http_incoming_handler_handle(exports_wasi_http_incoming_handler_own_incoming_request_t request,
                                               exports_wasi_http_incoming_handler_own_response_outparam_t response_out) {
    wasi_http_types_incoming_request_drop_own(request);
    respond_text(response_out, 200, "Hello, World!\n");
}
