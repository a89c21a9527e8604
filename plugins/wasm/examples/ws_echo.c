/*
 * ws_echo.c: a WebSocket echo as a WebAssembly component. Every text or
 * binary message comes back as it came. Route it with
 *   (path: "/ws/wasm/echo", handler: WebSocket(module: "ws_echo_wasm"))
 * The server does the handshake and the framing (pings, fragments,
 * close); the component exports troupe:host/websocket-handler (the
 * ws-module world of plugins/wasm/wit) and sees whole messages, each
 * call on a fresh instance. Bindings: ../gen/ws_module.h (wit-bindgen c,
 * committed). Build: plugins/build.sh, or
 * plugins/wasm/build-component.sh ws_echo.c ws_echo.wasm.
 */
#include "ws_module.h"

/* Accepts every socket, with no header added to the 101. The request is
 * ours to free. */
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
    /* send copies the message; it fails only when the client is not
     * reading (its queue is full) or has gone: no one to echo to. */
    troupe_host_websocket_send_error_t err;
    troupe_host_websocket_send(socket, msg, &err);
    troupe_host_websocket_message_free(msg);
}

void exports_troupe_host_websocket_handler_on_close(uint64_t socket, uint16_t code) {
    (void)socket;
    (void)code;
}
