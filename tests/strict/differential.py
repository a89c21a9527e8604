"""Sends each raw request of payloads.py to HTTP servers over TCP and to
h11 (a strict RFC 9112 parser, in process), and prints one JSON object
per payload: {"name", "<party>": {"verdict", "status"}}.

Usage: differential.py NAME=HOST:PORT ...  (h11 needs no address).

Verdicts: `accept` (the first request was answered 1xx-3xx, or h11
parsed the whole message), `reject` (answered 4xx, or 501/505, which
RFC 9112 names for unknown codings and versions; or the connection was
closed unanswered; or h11 raised), `error` (any other 5xx: the server
blamed itself for the client's bytes) and `incomplete` (no answer in
time, or h11 wanted more bytes: both waited for a body that never came).
"""

import json
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

import h11

from payloads import PAYLOADS

WAIT = 2.0


def classify(status):
    if status is None:
        return "reject"
    if status < 400:
        return "accept"
    if status < 500 or status in (501, 505):
        return "reject"
    return "error"


def over_tcp(addr, data):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=WAIT)
    got = b""
    try:
        s.sendall(data)
        while b"\r\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        if not got:
            return {"verdict": "incomplete", "status": None}
    except OSError:
        # Reset while still sending: the server refused and closed.
        pass
    finally:
        s.close()
    line = got.split(b"\r\n", 1)[0].split()
    status = int(line[1]) if len(line) > 1 and line[1].isdigit() else None
    return {"verdict": classify(status), "status": status}


def by_h11(data):
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return {"verdict": "incomplete", "status": None}
            if isinstance(event, h11.EndOfMessage):
                return {"verdict": "accept", "status": None}
    except h11.RemoteProtocolError as e:
        status = e.error_status_hint
        return {"verdict": "reject", "status": status, "why": str(e)}


def main():
    parties = [arg.split("=", 1) for arg in sys.argv[1:]]

    def run(payload):
        name, data = payload
        out = {"name": name, "h11": by_h11(data)}
        for party, addr in parties:
            out[party] = over_tcp(addr, data)
        return out

    with ThreadPoolExecutor(8) as pool:
        for result in pool.map(run, PAYLOADS):
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
