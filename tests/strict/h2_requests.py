"""Malformed HTTP/2 requests (RFC 9113 §8) sent over h2c with prior
knowledge, one connection each, by hyper-h2 with its own checks off.

Usage: h2_requests.py HOST:PORT. Prints one JSON object per case:
{"name", "status" (the answer's, or null), "reset" (RST_STREAM or
GOAWAY: the stream or connection was refused as malformed)}.
Used by tests/it/strict_rfc.rs.
"""

import json
import socket
import sys

import h2.config
import h2.connection
import h2.events


def base(path=b"/upload", method=b"GET", extra=()):
    return [
        (b":method", method),
        (b":scheme", b"http"),
        (b":path", path),
        (b":authority", b"a"),
        *extra,
    ]


def without(name, headers):
    return [h for h in headers if h[0] != name]


CASES = [
    # (name, headers, body or None)
    ("ok", base(), None),
    ("ok_te_trailers", base(extra=[(b"te", b"trailers")]), None),
    ("ok_post_length", base(method=b"POST", extra=[(b"content-length", b"5")]), b"hello"),
    ("ok_obs_text_value", base(extra=[(b"x-name", b"caf\xe9")]), None),
    ("ok_host_without_authority", without(b":authority", base()) + [(b"host", b"a")], None),
    ("missing_method", without(b":method", base()), None),
    ("missing_scheme", without(b":scheme", base()), None),
    ("missing_path", without(b":path", base()), None),
    ("empty_path", base(path=b""), None),
    ("missing_authority_and_host", without(b":authority", base()), None),
    ("unknown_pseudo", base(extra=[(b":foo", b"bar")]), None),
    ("response_pseudo", base(extra=[(b":status", b"200")]), None),
    ("duplicate_path", base(extra=[(b":path", b"/y")]), None),
    ("pseudo_after_regular", [(b":method", b"GET"), (b":scheme", b"http"), (b"x-a", b"b"),
                              (b":path", b"/upload"), (b":authority", b"a")], None),
    ("connection", base(extra=[(b"connection", b"close")]), None),
    ("keep_alive", base(extra=[(b"keep-alive", b"timeout=5")]), None),
    ("proxy_connection", base(extra=[(b"proxy-connection", b"keep-alive")]), None),
    ("transfer_encoding", base(extra=[(b"transfer-encoding", b"chunked")]), None),
    ("upgrade", base(extra=[(b"upgrade", b"websocket")]), None),
    ("te_not_trailers", base(extra=[(b"te", b"gzip")]), None),
    ("uppercase_name", base(extra=[(b"X-A", b"b")]), None),
    ("space_in_name", base(extra=[(b"x a", b"b")]), None),
    ("colon_in_name", base(extra=[(b"x:a", b"b")]), None),
    ("value_cr", base(extra=[(b"x-a", b"a\rb")]), None),
    ("value_lf", base(extra=[(b"x-a", b"a\nb")]), None),
    ("value_nul", base(extra=[(b"x-a", b"a\x00b")]), None),
    ("value_leading_space", base(extra=[(b"x-a", b" b")]), None),
    ("value_trailing_tab", base(extra=[(b"x-a", b"b\t")]), None),
    ("host_differs_from_authority", base(extra=[(b"host", b"b")]), None),
    ("host_invalid", base(extra=[(b"host", b"a/b")]), None),
    ("length_longer_than_data", base(method=b"POST", extra=[(b"content-length", b"9")]), b"hello"),
    ("length_shorter_than_data", base(method=b"POST", extra=[(b"content-length", b"2")]), b"hello"),
    ("length_invalid", base(method=b"POST", extra=[(b"content-length", b"+5")]), b"hello"),
    ("connect_with_path", [(b":method", b"CONNECT"), (b":authority", b"a:80"), (b":path", b"/upload"),
                           (b":scheme", b"http")], None),
    ("connect_without_authority", [(b":method", b"CONNECT")], None),
]


def run(addr, headers, body):
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    config = h2.config.H2Configuration(
        client_side=True,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
    )
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    conn.send_headers(1, headers, end_stream=body is None)
    if body is not None:
        conn.send_data(1, body, end_stream=True)
    sock.sendall(conn.data_to_send())
    out = {"status": None, "reset": False}
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                out["reset"] = out["status"] is None
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    out["status"] = int(dict(event.headers)[b":status"])
                    return out
                if isinstance(event, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    out["reset"] = True
                    return out
            pending = conn.data_to_send()
            if pending:
                sock.sendall(pending)
    except socket.timeout:
        out["timeout"] = True
    finally:
        sock.close()
    return out


def main():
    addr = sys.argv[1]
    for name, headers, body in CASES:
        print(json.dumps({"name": name, **run(addr, headers, body)}), flush=True)


if __name__ == "__main__":
    main()
