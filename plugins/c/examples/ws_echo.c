/*
 * ws_echo.c: a WebSocket echo in C. Every text or binary message comes
 * back as it came. Route it with
 *   (path: "/echo", handler: WebSocket(module: "ws_echo"))
 * The server does the handshake and the framing (pings, fragments, close);
 * the module only sees whole messages. Build:
 *   cc -shared -fPIC -O2 -I plugins/include -o libws_echo.so ws_echo.c
 */
#include <stdlib.h>

#include "troupe_module.h"

typedef struct echo {
    const troupe_host *host;
} echo;

static int32_t init(const troupe_host *host, troupe_str config, void **instance) {
    (void)config;
    /* A server older than the WebSocket revision has no ws_send. */
    if (host->abi_version >> 16 < 1) return TROUPE_ERROR;
    echo *e = calloc(1, sizeof *e);
    if (!e) return TROUPE_ERROR;
    e->host = host;
    *instance = e;
    return TROUPE_OK;
}

static int32_t ws_message(void *instance, uint64_t socket, uint32_t kind, troupe_str data) {
    echo *e = instance;
    /* ws_send copies `data`; it fails only when the client is not reading
     * (its queue is full) or has gone, and then there is no one to echo to. */
    e->host->ws_send(e->host->ctx, socket, kind, data);
    return TROUPE_OK;
}

static void shutdown(void *instance) {
    free(instance);
}

static const troupe_module descriptor = {
    .abi_version = TROUPE_ABI_VERSION,
    .name = "ws_echo",
    .init = init,
    .shutdown = shutdown,
    .ws_message = ws_message,
};

const troupe_module *troupe_module_entry(void) {
    return &descriptor;
}
