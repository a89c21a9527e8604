/*
 * misbehave.c: a TEST-ONLY component that fails on request.
 *   ?do=trap    calls abort() (a trap: 500)
 *   ?do=loop    never returns (504 when the time limit passes)
 *   ?do=memory  allocates until memory runs out, then traps (500)
 *   ?do=count   "served N": requests this instance has served, itself
 *               included (1 unless the instance is reused)
 *   ?do=work&rounds=R  computes for a while (tens of milliseconds per
 *               round, up to 50; 1 if absent), then answers "worked N": a long
 *               call that ends well
 *   ?do=store&key=K&bytes=N  stores N bytes under K in the shared store:
 *               "stored" (200), or 507 "refused: <why>" past the module's
 *               `kv` quota
 *   ?do=respond&status=S&name=N&value=V  answers "ok" with status S (200
 *               if absent) and the header N: V, through troupe:host/api
 *               respond (a forbidden or malformed header, a bad status, a
 *               content-length not the body's: the host answers 500)
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
    char what[16], key[64], bytes[16], status[8], name[64], value[64], rounds[8];
    wasi_http_types_borrow_incoming_request_t req = wasi_http_types_borrow_incoming_request(request);
    query_value(req, "do", "", what, sizeof what);
    query_value(req, "key", "k", key, sizeof key);
    query_value(req, "bytes", "0", bytes, sizeof bytes);
    query_value(req, "status", "200", status, sizeof status);
    query_value(req, "name", "x-test", name, sizeof name);
    query_value(req, "value", "yes", value, sizeof value);
    query_value(req, "rounds", "1", rounds, sizeof rounds);
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
        unsigned long r = strtoul(rounds, NULL, 10);
        unsigned long n = 20000000ul * (r > 50 ? 50 : r); /* its sum fits 32 bits */
        for (unsigned long i = 0; i < n; i++) sum += i & 7;
        char text[32];
        snprintf(text, sizeof text, "worked %lu\n", (unsigned long)sum);
        respond_text(response_out, 200, text);
        return;
    }
    if (strcmp(what, "store") == 0) {
        size_t n = strtoul(bytes, NULL, 10);
        module_string_t k = {(uint8_t *)key, strlen(key)}, why;
        module_list_u8_t v = {calloc(n ? n : 1, 1), n};
        if (!v.ptr) abort();
        bool stored = troupe_host_api_kv_set(&k, &v, &why);
        free(v.ptr);
        if (stored) {
            respond_text(response_out, 200, "stored\n");
            return;
        }
        char text[512];
        snprintf(text, sizeof text, "refused: %.*s\n", (int)why.len, (const char *)why.ptr);
        module_string_free(&why);
        respond_text(response_out, 507, text);
        return;
    }
    if (strcmp(what, "respond") == 0) {
        module_tuple2_string_list_u8_t header = {
            .f0 = {(uint8_t *)name, strlen(name)},
            .f1 = {(uint8_t *)value, strlen(value)},
        };
        module_list_tuple2_string_list_u8_t headers = {&header, 1};
        module_list_u8_t body = {(uint8_t *)"ok\n", 3};
        troupe_host_api_respond(response_out, (uint16_t)strtoul(status, NULL, 10), &headers, &body);
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
