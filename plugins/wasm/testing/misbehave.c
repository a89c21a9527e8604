/*
 * misbehave.c: a TEST-ONLY component that fails on request.
 *   ?do=trap    calls abort() (a trap: 500)
 *   ?do=loop    never returns (504 when the time limit passes)
 *   ?do=memory  allocates until memory runs out, then traps (500)
 *   anything else: 200 "ok"
 */
#include <stdlib.h>
#include <string.h>

#include "respond.h"

/* Kept reachable so the compiler cannot drop the allocations. */
static char *volatile hoard;

void exports_wasi_http_incoming_handler_handle(exports_wasi_http_incoming_handler_own_incoming_request_t request,
                                               exports_wasi_http_incoming_handler_own_response_outparam_t response_out) {
    char what[16];
    query_value(wasi_http_types_borrow_incoming_request(request), "do", "", what, sizeof what);
    wasi_http_types_incoming_request_drop_own(request);
    if (strcmp(what, "trap") == 0) abort();
    if (strcmp(what, "loop") == 0) {
        volatile unsigned long spin = 0;
        for (;;) spin++;
    }
    if (strcmp(what, "memory") == 0) {
        for (;;) {
            char *p = malloc(1 << 20);
            if (!p) abort();
            memset(p, 1, 1 << 20);
            *(char **)p = hoard;
            hoard = p;
        }
    }
    respond_text(response_out, 200, "ok\n");
}
