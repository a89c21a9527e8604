/*
 * ws_room.c: a WebSocket chat room as a WebAssembly component. Every
 * message any client sends goes to every open socket of the module, the
 * sender's included. Route it with
 *   (path: "/ws/wasm/room", handler: WebSocket(module: "ws_room_wasm"))
 * Each call runs on a fresh instance, so the component keeps no list of
 * its own: troupe:host/websocket `sockets` asks the server for the
 * module's open sockets, and `send` queues for each (never waiting for a
 * slow client). A socket that misses a message (its client is not
 * reading) is counted in troupe_module_counter_total{name="missed"}.
 * Build: plugins/build.sh, or
 * plugins/wasm/build-component.sh ws_room.c ws_room.wasm.
 */
#include <string.h>

#include "ws_module.h"

bool exports_troupe_host_websocket_handler_on_open(uint64_t socket,
                                                   exports_troupe_host_websocket_handler_request_t *req,
                                                   ws_module_list_tuple2_string_list_u8_t *headers,
                                                   exports_troupe_host_websocket_handler_answer_t *refusal) {
    (void)socket;
    (void)refusal;
    exports_troupe_host_websocket_handler_request_free(req);
    headers->ptr = NULL;
    headers->len = 0;
    return true;
}

void exports_troupe_host_websocket_handler_on_message(uint64_t socket,
                                                      exports_troupe_host_websocket_handler_message_t *msg) {
    (void)socket;
    ws_module_list_u64_t open;
    troupe_host_websocket_sockets(&open);
    uint64_t missed = 0;
    for (size_t i = 0; i < open.len; i++) {
        troupe_host_websocket_send_error_t err;
        if (!troupe_host_websocket_send(open.ptr[i], msg, &err) && err != TROUPE_HOST_WEBSOCKET_SEND_ERROR_GONE)
            missed++;
    }
    ws_module_list_u64_free(&open);
    troupe_host_websocket_message_free(msg);
    if (missed) {
        ws_module_string_t name;
        ws_module_string_set(&name, "missed");
        troupe_host_api_metric(&name, missed);
    }
}

void exports_troupe_host_websocket_handler_on_close(uint64_t socket, uint16_t code) {
    (void)socket;
    (void)code;
}
