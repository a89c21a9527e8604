/*
 * troupe_module.h: the C ABI between Troupe and a native module.
 *
 * ABI version 1. A module is a shared library that exports ONE symbol,
 *
 *     const troupe_module *troupe_module_entry(void);
 *
 * returning a pointer to a static descriptor. Troupe checks its
 * `abi_version` (set it to TROUPE_ABI_VERSION: the major version must be
 * the server's, the revision one it knows) before calling anything else,
 * and refuses the library (naming the file and the symbol) otherwise.
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

/* The ABI's major version (what a module must match) in the low 16 bits,
 * its revision (what it adds, compatibly) in the high 16 bits. A server
 * takes a module of the same major version and any revision it knows, and
 * reads only the fields that revision has. Revisions:
 *   0: the first (a module's abi_version of plain 1);
 *   1: the WebSocket hooks of troupe_module and functions of troupe_host
 *      (and set_upstream);
 *   2: troupe_host's set_rate_key (troupe_module is as in revision 1). */
#define TROUPE_ABI_MAJOR 1u
#define TROUPE_ABI_REVISION 2u
#define TROUPE_ABI_VERSION (TROUPE_ABI_MAJOR | TROUPE_ABI_REVISION << 16)

/* Return codes of init, handle, request_filter and response_filter. */
#define TROUPE_OK 0          /* success (request_filter: continue to the handler) */
#define TROUPE_RESPOND 1     /* request_filter only: answer with `resp` now */
#define TROUPE_ERROR (-1)    /* failure: the request gets 500 and the module is restarted */

/* Return codes of host->kv_set, besides TROUPE_OK (stored) and
 * TROUPE_ERROR (it never reached the store: under Process isolation, the
 * server did not answer in time). */
#define TROUPE_KV_FULL 1     /* refused: the module holds its `kv` quota of keys or bytes */

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
     * larger than `cap`), or -1 if the key is absent.
     * kv_set returns TROUPE_OK, or TROUPE_KV_FULL when the write would take
     * the module past its quota (`kv: (keys: .., bytes: ..)` in its config;
     * nothing else is evicted, the write is refused), or TROUPE_ERROR.
     * (It returned void before the quotas; a module built then, which
     * ignores the result, still works.) kv_delete deletes any module's key. */
    int64_t (*kv_get)(void *ctx, troupe_str key, uint8_t *buf, size_t cap);
    int32_t (*kv_set)(void *ctx, troupe_str key, troupe_str value);
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

    /* ---- WebSocket (revision 1; check host->abi_version >> 16 >= 1) ----
     * Sockets are named by an id (the `socket` of the ws_ hooks below),
     * unique in the server's life. Both functions may be called from any
     * thread, from a hook or not (a broadcast from a thread of the
     * module's own), and never block.
     *
     * ws_send queues one message (TROUPE_WS_TEXT, which must be UTF-8, or
     * TROUPE_WS_BINARY) for the socket, copying `data`. Returns TROUPE_OK,
     * or TROUPE_ERROR when the socket is closed or closing, is not this
     * module's, its queue is full (a client that does not read), or the
     * text is not UTF-8.
     * ws_end closes the socket with `code` (1000 normal, 4000-4999 the
     * module's own) and a short `reason` (at most 123 bytes); messages
     * queued before it go first. */
    int32_t (*ws_send)(void *ctx, uint64_t socket, uint32_t kind, troupe_str data);
    int32_t (*ws_end)(void *ctx, uint64_t socket, uint16_t code, troupe_str reason);

    /* ---- Request filters (revision 1) ----
     * request_filter only, on a route whose handler is Proxy(..): send
     * this request to the upstream group `name` (a name in `upstreams`)
     * instead of the route's, then return TROUPE_OK. A later call (or a
     * later module's) wins. A name the config has not answers 502; a
     * route with another handler ignores it, and so does TROUPE_RESPOND.
     * Copied, like every argument. */
    void (*set_upstream)(troupe_response *resp, troupe_str name);

    /* ---- Rate-limit keys (revision 2; check host->abi_version >> 16 >= 2) ----
     * request_filter only: the key this request counts under in the rate
     * zones keyed by `Module` (`rate_zones: {"z": (rate: "10r/s", key:
     * Module)}`) that its route or server applies: a user, a tenant, an API
     * key the module resolved. Those zones are checked once every
     * middleware of the route ran, just before its handler; a request no
     * filter keyed is not limited by them. A later call (or a later
     * module's) wins; an empty key is no key. Copied, like every argument;
     * TROUPE_RESPOND ignores it. */
    void (*set_rate_key)(troupe_response *resp, troupe_str key);
} troupe_host;

/* The kinds of WebSocket messages, in ws_send and ws_message. */
#define TROUPE_WS_TEXT 1u
#define TROUPE_WS_BINARY 2u

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

    /* ---- WebSocket (revision 1) -----------------------------------------
     * For routes `handler: WebSocket(module: "name")`: the server does the
     * handshake and the framing, the module sees whole messages. A module
     * offers ws_message to be used so; ws_open and ws_close are optional.
     * The calls for one socket never overlap and come in order: ws_open,
     * ws_message any number of times, ws_close once. Calls for different
     * sockets may run at once on different threads. A socket stays with
     * the instance it opened on: after a module reload, the old instance
     * keeps its sockets (and is shut down once the last one closed) while
     * new sockets go to the new one.
     *
     * ws_open: a client asks to open `socket`, with the request `req` (its
     * body is empty). TROUPE_OK accepts: the headers set in `resp` go with
     * the 101 (a Sec-WebSocket-Protocol the module chose, say; its status
     * and body are ignored), and ws_send may be called at once (messages
     * wait for the handshake). TROUPE_RESPOND refuses with `resp` (a 403,
     * say). TROUPE_ERROR: 500, and the module is restarted. */
    int32_t (*ws_open)(void *instance, uint64_t socket, const troupe_request *req, troupe_response *resp);

    /* One whole message: `kind` is TROUPE_WS_TEXT (valid UTF-8) or
     * TROUPE_WS_BINARY; `data` is borrowed for the call. TROUPE_ERROR
     * closes the socket with 1011 (the module is not restarted). */
    int32_t (*ws_message)(void *instance, uint64_t socket, uint32_t kind, troupe_str data);

    /* The socket is gone: `code` is the close code the client sent or the
     * server closed with (1001 the server is stopping, 1012 the module was
     * reloaded, 1006 the connection broke without one). ws_send to it
     * fails from now on. */
    void (*ws_close)(void *instance, uint64_t socket, uint16_t code);
} troupe_module;

/* The one symbol Troupe looks up. */
#define TROUPE_ENTRY_SYMBOL "troupe_module_entry"
const troupe_module *troupe_module_entry(void);

/* ---- Query parameters (a header-only helper: no ABI change) -------------
 *
 * troupe_query_param: the first value of the query parameter `name`,
 * decoded by the rules every Troupe module language shares (the Rust SDK's
 * Request::query_param, Lua's req:query_param, WebAssembly's query-param):
 *  - the query is split on '&', empty pieces skipped; each piece on its
 *    first '=', and a piece without '=' has the empty value;
 *  - name and value alike: '+' is a space, '%' and two hex digits (either
 *    case) is that byte, and any other '%' stays as it is;
 *  - the decoded bytes are read as UTF-8, each ill-formed sequence becoming
 *    one U+FFFD (EF BF BD), so the value is always valid UTF-8;
 *  - names compare exactly (case matters) after decoding; the first wins.
 *
 * It copies at most `cap` bytes of the decoded value into `buf` and returns
 * the value's full length, or -1 when the query has no such parameter:
 * kv_get's protocol (buf = NULL, cap = 0 asks for the length). The value is
 * not NUL-terminated, and %00 puts a NUL byte in it. `query` is any raw
 * query string: req->query, entry->query, a form-encoded body.
 *
 *     uint8_t buf[256];
 *     int64_t n = troupe_query_param(req->query, "name", buf, sizeof buf);
 *     if (n > (int64_t)sizeof buf) ... too long for buf ...
 *     else if (n >= 0) { troupe_str name = {buf, (size_t)n}; ... }
 *
 * The troupe_qp_ names are its parts, not API. */

/* A raw piece of the query, read one percent-decoded byte at a time. */
typedef struct troupe_qp_raw {
    const uint8_t *p;
    size_t len, at;
} troupe_qp_raw;

static inline int troupe_qp_hex(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The next decoded byte, or -1 at the end. */
static inline int troupe_qp_next(troupe_qp_raw *r) {
    if (r->at >= r->len) return -1;
    uint8_t c = r->p[r->at++];
    if (c == '+') return ' ';
    if (c == '%' && r->len - r->at >= 2) {
        int hi = troupe_qp_hex(r->p[r->at]), lo = troupe_qp_hex(r->p[r->at + 1]);
        if (hi >= 0 && lo >= 0) {
            r->at += 2;
            return hi << 4 | lo;
        }
    }
    return c; /* '%' not followed by two hex digits is itself */
}

/* Where decoded text goes: into buf (up to cap bytes, counting past it),
 * or, when `want` is set, compared with the first `cap` bytes of want. */
typedef struct troupe_qp_out {
    uint8_t *buf;
    size_t cap;
    const char *want;
    size_t len;
    int differs;
} troupe_qp_out;

static inline void troupe_qp_put(troupe_qp_out *o, uint8_t b) {
    if (o->want) {
        if (o->len >= o->cap || (uint8_t)o->want[o->len] != b) o->differs = 1;
    } else if (o->len < o->cap) {
        o->buf[o->len] = b;
    }
    o->len++;
}

/* Decodes one name or value into `o`. An ill-formed UTF-8 sequence is its
 * longest valid start (or one byte), replaced by one U+FFFD: what Rust's
 * String::from_utf8_lossy and the WHATWG decoder do, so C agrees with the
 * other languages byte for byte. */
static inline void troupe_qp_decode(const uint8_t *p, size_t len, troupe_qp_out *o) {
    troupe_qp_raw r = {p, len, 0};
    int b;
    while ((b = troupe_qp_next(&r)) >= 0) {
        if (b < 0x80) {
            troupe_qp_put(o, (uint8_t)b);
            continue;
        }
        size_t need = b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xF0 && b <= 0xF4 ? 4 : 0;
        uint8_t seq[4] = {(uint8_t)b, 0, 0, 0};
        size_t n = 1;
        while (n < need) {
            troupe_qp_raw peek = r;
            int c = troupe_qp_next(&peek);
            int lo = 0x80, hi = 0xBF;
            if (n == 1) { /* no overlong forms, surrogates or code points past U+10FFFF */
                if (b == 0xE0) lo = 0xA0;
                if (b == 0xED) hi = 0x9F;
                if (b == 0xF0) lo = 0x90;
                if (b == 0xF4) hi = 0x8F;
            }
            if (c < lo || c > hi) break; /* the end (-1) too; `c` is read again */
            seq[n++] = (uint8_t)c;
            r = peek;
        }
        if (n == need) {
            for (size_t i = 0; i < n; i++) troupe_qp_put(o, seq[i]);
        } else {
            troupe_qp_put(o, 0xEF);
            troupe_qp_put(o, 0xBF);
            troupe_qp_put(o, 0xBD);
        }
    }
}

static inline int64_t troupe_query_param(troupe_str query, const char *name, uint8_t *buf, size_t cap) {
    size_t want = 0;
    while (name[want]) want++;
    size_t at = 0;
    while (at < query.len) {
        size_t end = at;
        while (end < query.len && query.ptr[end] != '&') end++;
        size_t eq = at;
        while (eq < end && query.ptr[eq] != '=') eq++;
        if (end > at) {
            troupe_qp_out key = {NULL, want, name, 0, 0};
            troupe_qp_decode(query.ptr + at, eq - at, &key);
            if (!key.differs && key.len == want) {
                troupe_qp_out value = {buf, cap, NULL, 0, 0};
                if (eq < end) troupe_qp_decode(query.ptr + eq + 1, end - eq - 1, &value);
                return (int64_t)value.len;
            }
        }
        at = end + 1;
    }
    return -1;
}

#ifdef __cplusplus
}
#endif

#endif /* TROUPE_MODULE_H */
