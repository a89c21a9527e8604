/*
 * ws_broadcast.c: a WebSocket chat room in C. Every message any client
 * sends goes to every open socket of the module, the sender's included.
 * Route it with
 *   (path: "/room", handler: WebSocket(module: "ws_broadcast"))
 * The instance keeps the ids of its open sockets (ws_open adds one,
 * ws_close removes it) under a lock: hooks for different sockets run on
 * different threads at once. ws_send may be called for any socket from
 * any thread; it queues and never blocks. Build:
 *   cc -shared -fPIC -O2 -I plugins/include -o libws_broadcast.so ws_broadcast.c -lpthread
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "troupe_module.h"

typedef struct room {
    const troupe_host *host;
    pthread_mutex_t lock;
    uint64_t *sockets;
    size_t len, cap;
} room;

static troupe_str str(const char *s) {
    troupe_str out = {(const uint8_t *)s, strlen(s)};
    return out;
}

static int32_t init(const troupe_host *host, troupe_str config, void **instance) {
    (void)config;
    if (host->abi_version >> 16 < 1) return TROUPE_ERROR;
    room *r = calloc(1, sizeof *r);
    if (!r) return TROUPE_ERROR;
    r->host = host;
    pthread_mutex_init(&r->lock, NULL);
    *instance = r;
    return TROUPE_OK;
}

static int32_t ws_open(void *instance, uint64_t socket, const troupe_request *req, troupe_response *resp) {
    (void)req;
    room *r = instance;
    pthread_mutex_lock(&r->lock);
    if (r->len == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        uint64_t *grown = realloc(r->sockets, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&r->lock);
            r->host->set_status(resp, 503);
            return TROUPE_RESPOND;
        }
        r->sockets = grown;
        r->cap = cap;
    }
    r->sockets[r->len++] = socket;
    pthread_mutex_unlock(&r->lock);
    return TROUPE_OK;
}

static int32_t ws_message(void *instance, uint64_t socket, uint32_t kind, troupe_str data) {
    (void)socket;
    room *r = instance;
    size_t missed = 0;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->len; i++)
        if (r->host->ws_send(r->host->ctx, r->sockets[i], kind, data) != TROUPE_OK) missed++;
    pthread_mutex_unlock(&r->lock);
    /* A socket whose client stopped reading misses messages, not the room. */
    if (missed) r->host->metric_incr(r->host->ctx, str("missed"), missed);
    return TROUPE_OK;
}

static void ws_close(void *instance, uint64_t socket, uint16_t code) {
    (void)code;
    room *r = instance;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->len; i++) {
        if (r->sockets[i] == socket) {
            r->sockets[i] = r->sockets[--r->len];
            break;
        }
    }
    pthread_mutex_unlock(&r->lock);
}

static void shutdown(void *instance) {
    room *r = instance;
    pthread_mutex_destroy(&r->lock);
    free(r->sockets);
    free(r);
}

static const troupe_module descriptor = {
    .abi_version = TROUPE_ABI_VERSION,
    .name = "ws_broadcast",
    .init = init,
    .shutdown = shutdown,
    .ws_open = ws_open,
    .ws_message = ws_message,
    .ws_close = ws_close,
};

const troupe_module *troupe_module_entry(void) {
    return &descriptor;
}
