/*
 * ws_probe.c: a WebSocket module for the tests (tests/it/module_ws.rs).
 * Echoes, and besides:
 *  - each instance has a number, counted in the shared store at init
 *    (a reload maps a fresh copy of the library, so a static would not
 *    count on); the text "instance?" is answered "instance N";
 *  - a query parameter `refuse` refuses the handshake with 403, and
 *    `protocol=P` accepts it with Sec-WebSocket-Protocol: P;
 *  - the text "bye" closes the socket with 4000 "bye";
 *  - the text "fail" makes ws_message fail (the server closes with 1011);
 *  - every ws_close is logged: "ws_probe instance N closed socket S with C".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "troupe_module.h"

typedef struct probe {
    const troupe_host *host;
    long number;
} probe;

static troupe_str str(const char *s) {
    troupe_str out = {(const uint8_t *)s, strlen(s)};
    return out;
}

static int is(troupe_str a, const char *b) {
    size_t n = strlen(b);
    return a.len == n && memcmp(a.ptr, b, n) == 0;
}

static int32_t init(const troupe_host *host, troupe_str config, void **instance) {
    (void)config;
    probe *p = calloc(1, sizeof *p);
    if (!p) return TROUPE_ERROR;
    p->host = host;
    char buf[32] = {0};
    int64_t n = host->kv_get(host->ctx, str("ws_probe.instances"), (uint8_t *)buf, sizeof buf - 1);
    p->number = (n > 0 ? strtol(buf, NULL, 10) : 0) + 1;
    snprintf(buf, sizeof buf, "%ld", p->number);
    host->kv_set(host->ctx, str("ws_probe.instances"), str(buf));
    *instance = p;
    return TROUPE_OK;
}

static int32_t ws_open(void *instance, uint64_t socket, const troupe_request *req, troupe_response *resp) {
    (void)socket;
    probe *p = instance;
    uint8_t buf[64];
    if (troupe_query_param(req->query, "refuse", NULL, 0) >= 0) {
        p->host->set_status(resp, 403);
        p->host->append_body(resp, str("refused\n"));
        return TROUPE_RESPOND;
    }
    int64_t n = troupe_query_param(req->query, "protocol", buf, sizeof buf);
    if (n > 0 && n <= (int64_t)sizeof buf) {
        troupe_str proto = {buf, (size_t)n};
        p->host->set_header(resp, str("sec-websocket-protocol"), proto);
    }
    return TROUPE_OK;
}

static int32_t ws_message(void *instance, uint64_t socket, uint32_t kind, troupe_str data) {
    probe *p = instance;
    const troupe_host *h = p->host;
    if (kind == TROUPE_WS_TEXT && is(data, "instance?")) {
        char out[48];
        snprintf(out, sizeof out, "instance %ld", p->number);
        h->ws_send(h->ctx, socket, TROUPE_WS_TEXT, str(out));
        return TROUPE_OK;
    }
    if (kind == TROUPE_WS_TEXT && is(data, "bye")) {
        h->ws_end(h->ctx, socket, 4000, str("bye"));
        return TROUPE_OK;
    }
    if (kind == TROUPE_WS_TEXT && is(data, "fail")) return TROUPE_ERROR;
    h->ws_send(h->ctx, socket, kind, data);
    return TROUPE_OK;
}

static void ws_close(void *instance, uint64_t socket, uint16_t code) {
    probe *p = instance;
    char line[96];
    snprintf(line, sizeof line, "ws_probe instance %ld closed socket %llu with %u", p->number,
             (unsigned long long)socket, (unsigned)code);
    p->host->log(p->host->ctx, TROUPE_LOG_INFO, str(line));
}

static void shutdown(void *instance) {
    probe *p = instance;
    char line[64];
    snprintf(line, sizeof line, "ws_probe instance %ld shut down", p->number);
    p->host->log(p->host->ctx, TROUPE_LOG_INFO, str(line));
    free(p);
}

static const troupe_module descriptor = {
    .abi_version = TROUPE_ABI_VERSION,
    .name = "ws_probe",
    .init = init,
    .shutdown = shutdown,
    .ws_open = ws_open,
    .ws_message = ws_message,
    .ws_close = ws_close,
};

const troupe_module *troupe_module_entry(void) {
    return &descriptor;
}
