/*
 * crashy.c: a TEST-ONLY module that fails on purpose, to prove isolation.
 *
 * GET ...?crash=segv   dereferences NULL (SIGSEGV)
 *        ?crash=abort  calls abort()
 *        ?crash=error  returns TROUPE_ERROR
 *        ?crash=loop   never returns
 *        ?crash=leak   allocates (and touches) 1 MiB after 1 MiB without
 *                      end, like a leaking module; it stops at 4 GiB (and
 *                      answers 200 "leaked") so that a test without a working
 *                      memory limit fails instead of eating the machine
 *        ?crash=header sets an invalid header name (500, not a restart)
 *        ?pid          200 with the process id, to tell children apart
 * anything else        200 "ok"
 * If its config is a file path, shutdown appends "shutdown\n" to it, so a
 * test can see that the hook ran. If it is "slow", init takes a second, so
 * a test can tell a request served by a new child from one served by a
 * child that was ready.
 */
#include <stdio.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "troupe_module.h"

static const troupe_host *host_table;
static char shutdown_file[4096];
/* Where leaked chunks escape to, so the compiler cannot drop them. */
static char *volatile leaked_chunk;

static int has(troupe_str query, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= query.len; i++)
        if (memcmp(query.ptr + i, needle, n) == 0) return 1;
    return 0;
}

static int32_t init(const troupe_host *host, troupe_str config, void **instance) {
    host_table = host;
    if (config.len == 4 && memcmp(config.ptr, "slow", 4) == 0) {
        sleep(1);
    } else if (config.len > 0 && config.len < sizeof shutdown_file) {
        memcpy(shutdown_file, config.ptr, config.len);
        shutdown_file[config.len] = '\0';
    }
    *instance = NULL;
    return TROUPE_OK;
}

static int32_t handle(void *instance, const troupe_request *req, troupe_response *resp) {
    (void)instance;
    if (has(req->query, "crash=segv")) {
        volatile int *p = NULL;
        *p = 1;
    }
    if (has(req->query, "crash=abort")) abort();
    if (has(req->query, "crash=error")) return TROUPE_ERROR;
    if (has(req->query, "crash=header")) {
        troupe_str bad = {(const uint8_t *)"bad name", 8};
        host_table->add_header(resp, bad, bad);
        return TROUPE_OK;
    }
    if (has(req->query, "crash=loop")) {
        volatile unsigned long spin = 0;
        for (;;) spin++;
    }
    if (has(req->query, "crash=leak")) {
        const size_t chunk = 1 << 20;
        for (size_t total = 0; total < ((size_t)4 << 30); total += chunk) {
            char *p = malloc(chunk);
            /* Out of memory: what a leaking module does then, crash. */
            if (!p) abort();
            memset(p, 0xa5, chunk);
            leaked_chunk = p;
        }
        troupe_str leaked = {(const uint8_t *)"leaked\n", 7};
        host_table->append_body(resp, leaked);
        return TROUPE_OK;
    }
    if (has(req->query, "pid")) {
        char text[32];
        int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
        troupe_str body = {(const uint8_t *)text, (size_t)n};
        host_table->append_body(resp, body);
        return TROUPE_OK;
    }
    troupe_str ok = {(const uint8_t *)"ok\n", 3};
    host_table->append_body(resp, ok);
    return TROUPE_OK;
}

static void shutdown(void *instance) {
    (void)instance;
    if (shutdown_file[0]) {
        int fd = open(shutdown_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            if (write(fd, "shutdown\n", 9) < 0) host_table->log(host_table->ctx, TROUPE_LOG_ERROR, (troupe_str){(const uint8_t *)"write failed", 12});
            close(fd);
        }
    }
}

static const troupe_module descriptor = {
    .abi_version = TROUPE_ABI_VERSION,
    .name = "crashy",
    .init = init,
    .handle = handle,
    .shutdown = shutdown,
};

const troupe_module *troupe_module_entry(void) {
    return &descriptor;
}
