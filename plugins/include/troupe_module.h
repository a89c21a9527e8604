/*
 * troupe_module.h: the C ABI between Troupe and a native module.
 *
 * ABI version 1. A module is a shared library that exports ONE symbol,
 *
 *     const troupe_module *troupe_module_entry(void);
 *
 * returning a pointer to a static descriptor. Troupe checks
 * `abi_version == TROUPE_ABI_VERSION` before calling anything else, and
 * refuses the library (naming the file and the symbol) otherwise.
 *
 * Life of a module instance:
 *   init(host, config) once → handle / request_filter / response_filter / log,
 *   any number of times, from ANY thread, concurrently → shutdown(instance) once,
 *   after the last call has returned.
 * So every hook must be thread-safe: keep mutable state behind a lock or
 * atomics, or keep none.
 *
 * OWNERSHIP: who frees what.
 *  - Everything Troupe passes in (the request, its strings, the config, the
 *    host table) is BORROWED: valid only until the hook returns. Copy what
 *    you keep. `host` (the table itself) stays valid until shutdown returns.
 *  - A module never hands memory to Troupe. It builds its response through
 *    the host functions (set_status, add_header, set_header, append_body),
 *    which COPY their arguments, so the module may free or reuse its buffers
 *    as soon as each call returns.
 *  - kv_get copies the value into a buffer the module owns.
 *  - The `instance` pointer set by init is the module's; Troupe only passes
 *    it back, and never frees it. Free it in shutdown.
 * Strings are byte slices (pointer + length), never NUL-terminated, and
 * may be empty with a NULL pointer.
 */
#ifndef TROUPE_MODULE_H
#define TROUPE_MODULE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TROUPE_ABI_VERSION 1u

/* Return codes of init, handle, request_filter and response_filter. */
#define TROUPE_OK 0          /* success (request_filter: continue to the handler) */
#define TROUPE_RESPOND 1     /* request_filter only: answer with `resp` now */
#define TROUPE_ERROR (-1)    /* failure: the request gets 500 and the module is restarted */

/* Log levels for host->log. */
#define TROUPE_LOG_ERROR 1u
#define TROUPE_LOG_WARN 2u
#define TROUPE_LOG_INFO 3u
#define TROUPE_LOG_DEBUG 4u
#define TROUPE_LOG_TRACE 5u

/* A borrowed byte string. */
typedef struct troupe_str {
    const uint8_t *ptr;
    size_t len;
} troupe_str;

/* One header field or route parameter. */
typedef struct troupe_pair {
    troupe_str name;
    troupe_str value;
} troupe_pair;

/* A request, borrowed for the duration of one hook call. */
typedef struct troupe_request {
    troupe_str method;          /* "GET" */
    troupe_str path;            /* decoded and normalized: "/hello/c" */
    troupe_str query;           /* raw, without '?'; empty when absent */
    const troupe_pair *headers; /* names are lower case */
    size_t headers_len;
    const troupe_pair *params;  /* route parameters: {name} in /users/{name} */
    size_t params_len;
    troupe_str body;            /* buffered, up to the configured limit */
    troupe_str peer;            /* client address, "ip:port" */
} troupe_request;

/* A response under construction. Opaque: owned by Troupe, changed only
 * through the host functions below. It starts as 200 with no headers and
 * an empty body; in response_filter it holds the handler's status and
 * headers (its body is not visible, and append_body is ignored there). */
typedef struct troupe_response troupe_response;

/* What the log hook sees after each response. */
typedef struct troupe_log_entry {
    troupe_str method;
    troupe_str path;
    troupe_str query;
    troupe_str peer;
    uint16_t status;
    uint64_t bytes;         /* response body bytes, when known up front */
    uint64_t duration_us;   /* from routing to the response head */
} troupe_log_entry;

/* The host API, the same for native, WebAssembly and Lua modules.
 * `ctx` is the first argument of each logging, store and metric function. */
typedef struct troupe_host {
    uint32_t abi_version;
    void *ctx;

    /* Logs `msg` at `level` in Troupe's error log, tagged with the module. */
    void (*log)(void *ctx, uint32_t level, troupe_str msg);

    /* The shared key-value store, visible to every module of every kind.
     * kv_get copies at most `cap` bytes of the value into `buf` and returns
     * the value's full length (call again with a bigger buffer if it is
     * larger than `cap`), or -1 if the key is absent. */
    int64_t (*kv_get)(void *ctx, troupe_str key, uint8_t *buf, size_t cap);
    void (*kv_set)(void *ctx, troupe_str key, troupe_str value);
    void (*kv_delete)(void *ctx, troupe_str key);

    /* Adds `by` to the counter `name` of this module
     * (troupe_module_counter_total{module, name}). */
    void (*metric_incr)(void *ctx, troupe_str name, uint64_t by);

    /* Building the response. Invalid header names or values make the
     * request fail with 500 (without restarting the module). */
    void (*set_status)(troupe_response *resp, uint16_t status);
    uint16_t (*status)(const troupe_response *resp);
    void (*add_header)(troupe_response *resp, troupe_str name, troupe_str value);
    void (*set_header)(troupe_response *resp, troupe_str name, troupe_str value);
    void (*append_body)(troupe_response *resp, troupe_str bytes);
} troupe_host;

/* The descriptor a module exports. Hooks it does not offer are NULL. */
typedef struct troupe_module {
    uint32_t abi_version;       /* TROUPE_ABI_VERSION */
    const char *name;           /* NUL-terminated, for logs */

    /* Creates an instance from the module's config (the `config` of its
     * entry in config.ron, as text). Store it in *instance. */
    int32_t (*init)(const troupe_host *host, troupe_str config, void **instance);

    /* Answers a request routed to the module: TROUPE_OK or TROUPE_ERROR. */
    int32_t (*handle)(void *instance, const troupe_request *req, troupe_response *resp);

    /* Middleware, before the handler: TROUPE_OK to continue, TROUPE_RESPOND
     * to answer with `resp` instead (a 401, say), or TROUPE_ERROR. */
    int32_t (*request_filter)(void *instance, const troupe_request *req, troupe_response *resp);

    /* Middleware, after the handler: may change the status and headers. */
    int32_t (*response_filter)(void *instance, troupe_response *resp);

    /* Called after each response on a server that lists the module in
     * `loggers`. Errors cannot be reported; it must not block for long. */
    void (*log)(void *instance, const troupe_log_entry *entry);

    /* Frees the instance. No hook runs after it. */
    void (*shutdown)(void *instance);
} troupe_module;

/* The one symbol Troupe looks up. */
#define TROUPE_ENTRY_SYMBOL "troupe_module_entry"
const troupe_module *troupe_module_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_MODULE_H */
