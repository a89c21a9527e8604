/*
 * request_logger.c: a custom access logger as a Troupe module (P6.2).
 *
 * Listed in a server's `loggers`, it appends one line per request to the
 * file named by its config:
 *   <peer> "<method> <path>[?query]" <status> <bytes> <duration_us>us
 * Each line is one write(2) on an O_APPEND descriptor, so lines from
 * concurrent requests never interleave.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "troupe_module.h"

typedef struct logger {
    const troupe_host *host;
    int fd;
} logger;

static troupe_str str(const char *s) {
    troupe_str out = {(const uint8_t *)s, strlen(s)};
    return out;
}

static int32_t init(const troupe_host *host, troupe_str config, void **instance) {
    char path[4096];
    if (config.len == 0 || config.len >= sizeof path) {
        host->log(host->ctx, TROUPE_LOG_ERROR, str("request_logger: config must be the log file path"));
        return TROUPE_ERROR;
    }
    memcpy(path, config.ptr, config.len);
    path[config.len] = '\0';
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        char msg[4200];
        snprintf(msg, sizeof msg, "request_logger: cannot open %s", path);
        host->log(host->ctx, TROUPE_LOG_ERROR, str(msg));
        return TROUPE_ERROR;
    }
    logger *l = calloc(1, sizeof *l);
    if (!l) {
        close(fd);
        return TROUPE_ERROR;
    }
    l->host = host;
    l->fd = fd;
    *instance = l;
    return TROUPE_OK;
}

static void log_request(void *instance, const troupe_log_entry *e) {
    logger *l = instance;
    char line[2048];
    int n = snprintf(line, sizeof line, "%.*s \"%.*s %.*s%s%.*s\" %u %llu %lluus\n",
                     (int)e->peer.len, (const char *)e->peer.ptr,
                     (int)e->method.len, (const char *)e->method.ptr,
                     (int)e->path.len, (const char *)e->path.ptr,
                     e->query.len ? "?" : "",
                     (int)e->query.len, (const char *)e->query.ptr,
                     (unsigned)e->status, (unsigned long long)e->bytes,
                     (unsigned long long)e->duration_us);
    if (n <= 0) return;
    if ((size_t)n >= sizeof line) {
        n = sizeof line - 1;
        line[n - 1] = '\n';
    }
    if (write(l->fd, line, (size_t)n) < 0)
        l->host->metric_incr(l->host->ctx, str("write_errors"), 1);
}

static void shutdown(void *instance) {
    logger *l = instance;
    close(l->fd);
    free(l);
}

static const troupe_module descriptor = {
    .abi_version = TROUPE_ABI_VERSION,
    .name = "request_logger",
    .init = init,
    .log = log_request,
    .shutdown = shutdown,
};

const troupe_module *troupe_module_entry(void) {
    return &descriptor;
}
