/*
 * ws_misbehave.c: a TEST-ONLY WebSocket component that fails on request.
 * on-open: a path with "refuse" is answered 403 "refused"; one with
 *   "protocol=chat" gets sec-websocket-protocol: chat with the 101.
 * on-message (text):
 *   "loop"    never returns (the socket is closed 1011 at the time limit)
 *   "trap"    calls abort() (a trap: 1011)
 *   "memory"  allocates until memory runs out, then traps (1011)
 *   "bye"     closes the socket with 4000 "bye"
 *   anything else (binary too) comes back as it came.
 * on-close logs "closed with CODE" at info.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws_module.h"

static char *volatile hoard;

static bool has(const ws_module_string_t *s, const char *word) {
    size_t n = strlen(word);
    for (size_t i = 0; i + n <= s->len; i++)
        if (memcmp(s->ptr + i, word, n) == 0) return true;
    return false;
}

static void bytes(ws_module_list_u8_t *out, const char *text) {
    out->len = strlen(text);
    out->ptr = malloc(out->len);
    memcpy(out->ptr, text, out->len);
}

bool exports_troupe_host_websocket_handler_on_open(uint64_t socket,
                                                   exports_troupe_host_websocket_handler_request_t *req,
                                                   ws_module_list_tuple2_string_list_u8_t *headers,
                                                   exports_troupe_host_websocket_handler_answer_t *refusal) {
    (void)socket;
    bool refuse = has(&req->path_with_query, "refuse");
    bool chat = has(&req->path_with_query, "protocol=chat");
    exports_troupe_host_websocket_handler_request_free(req);
    if (refuse) {
        refusal->status = 403;
        refusal->headers.ptr = NULL;
        refusal->headers.len = 0;
        bytes(&refusal->body, "refused\n");
        return false;
    }
    headers->ptr = NULL;
    headers->len = 0;
    if (chat) {
        headers->ptr = malloc(sizeof *headers->ptr);
        headers->len = 1;
        ws_module_string_dup(&headers->ptr[0].f0, "sec-websocket-protocol");
        bytes(&headers->ptr[0].f1, "chat");
    }
    return true;
}

static bool is(const exports_troupe_host_websocket_handler_message_t *msg, const char *text) {
    return msg->tag == TROUPE_HOST_WEBSOCKET_MESSAGE_TEXT && msg->val.text.len == strlen(text) &&
           memcmp(msg->val.text.ptr, text, msg->val.text.len) == 0;
}

void exports_troupe_host_websocket_handler_on_message(uint64_t socket,
                                                      exports_troupe_host_websocket_handler_message_t *msg) {
    troupe_host_websocket_send_error_t err;
    if (is(msg, "loop")) {
        for (volatile unsigned long i = 0;; i++) {
        }
    }
    if (is(msg, "trap")) abort();
    if (is(msg, "memory")) {
        for (;;) {
            char *block = malloc(1 << 20);
            if (!block) abort();
            memset(block, 1, 1 << 20);
            hoard = block;
        }
    }
    if (is(msg, "bye")) {
        ws_module_string_t reason;
        ws_module_string_set(&reason, "bye");
        troupe_host_websocket_close(socket, 4000, &reason, &err);
    } else {
        troupe_host_websocket_send(socket, msg, &err);
    }
    troupe_host_websocket_message_free(msg);
}

void exports_troupe_host_websocket_handler_on_close(uint64_t socket, uint16_t code) {
    (void)socket;
    char text[32];
    snprintf(text, sizeof text, "closed with %u", (unsigned)code);
    ws_module_string_t line;
    ws_module_string_set(&line, text);
    troupe_host_api_log(TROUPE_HOST_API_LEVEL_INFO, &line);
}
