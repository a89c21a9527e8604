"""Minimal wasi:http/proxy handler for Troupe, built with componentize-py.

GET  -> 200 text/plain "hello from python at <path>"
else -> 405 text/plain "method not allowed"
"""
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    Method_Get,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)
from componentize_py_types import Ok


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path = request.path_with_query() or "/"
        if isinstance(request.method(), Method_Get):
            status, body = 200, f"hello from python at {path}\n".encode()
        else:
            status, body = 405, b"method not allowed\n"

        headers = Fields.from_list([("content-type", b"text/plain")])
        response = OutgoingResponse(headers)
        response.set_status_code(status)
        out_body = response.body()
        ResponseOutparam.set(response_out, Ok(response))

        # The output stream (a child resource) must be dropped before the body
        # is finished; the `with` block does that.
        with out_body.write() as stream:
            # blocking_write_and_flush accepts at most 4096 bytes per call.
            for i in range(0, len(body), 4096):
                stream.blocking_write_and_flush(body[i : i + 4096])
        OutgoingBody.finish(out_body, None)
