/*
 * misbehave.c: a TEST-ONLY component that fails on request.
 *   ?do=trap    calls abort() (a trap: 500)
 *   ?do=loop    never returns (504 when the time limit passes)
 *   ?do=memory  allocates until memory runs out, then traps (500)
 *   ?do=count   "served N": requests this instance has served, itself
 *               included (1 unless the instance is reused)
 *   ?do=work    computes for a while (tens of milliseconds), then answers
 *               "worked N": a long call that ends well
 *   anything else: 200 "ok"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "respond.h"

/* Kept reachable so the compiler cannot drop the allocations. */
static char *volatile hoard;
static unsigned served;

void exports_wasi_http_incoming_handler_handle(exports_wasi_http_incoming_handler_own_incoming_request_t request,
                                               exports_wasi_http_incoming_handler_own_response_outparam_t response_out) {
    char what[16];
    query_value(wasi_http_types_borrow_incoming_request(request), "do", "", what, sizeof what);
    wasi_http_types_incoming_request_drop_own(request);
    served++;
    if (strcmp(what, "count") == 0) {
        char text[32];
        snprintf(text, sizeof text, "served %u\n", served);
        respond_text(response_out, 200, text);
        return;
    }
    if (strcmp(what, "work") == 0) {
        volatile unsigned long sum = 0;
        for (unsigned long i = 0; i < 20000000ul; i++) sum += i & 7;
        char text[32];
        snprintf(text, sizeof text, "worked %lu\n", (unsigned long)sum);
        respond_text(response_out, 200, text);
        return;
    }
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
