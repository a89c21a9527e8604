#!/usr/bin/env python3
"""Live-operations timings for benches/load/reload.sh (issue 5).

    reload.py config DIR          write DIR/config.ron: the load config plus
                                  100 routes, /probe, a WebAssembly module
                                  and the admin API on 127.0.0.1:18482
    reload.py measure DIR PID     print RESULT lines: SIGHUP → new config
                                  serving, and one module reloaded (Lua,
                                  WebAssembly with a cached artifact)
    reload.py loop DIR PID        until killed: once a second, alternately
                                  reload the Lua module (admin API) and the
                                  config (SIGHUP, with a changed /probe)

Timings are wall-clock from the client's side, so they include the
HTTP round trip that observes the change (~0.1 ms on loopback).
"""
import http.client
import os
import pathlib
import signal
import statistics
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
PORT, ADMIN = 18480, 18482
ROUTES = 100


def config_text(generation: int) -> str:
    base = (HERE / "config.ron").read_text()
    routes = "".join(
        f'            (path: "/r{i}/{{id}}", handler: Return(body: "route {i}\\n")),\n'
        for i in range(ROUTES)
    )
    routes += f'            (path: "/probe", handler: Return(body: "generation {generation}")),\n'
    routes += '            (path: "/wasm", handler: Module("wasm")),\n'
    wasm = REPO / "target/modules/bench_hello_wasm.wasm"
    text = base.replace(
        '            (path: "/lua", handler: Module("lua")),\n',
        '            (path: "/lua", handler: Module("lua")),\n' + routes,
    )
    text = text.replace(
        'modules: [(name: "lua", source: Lua("hello.lua"))],',
        f'modules: [(name: "lua", source: Lua("{HERE / "hello.lua"}")),'
        f' (name: "wasm", source: Wasm("{wasm}"))],\n'
        f'    admin: (listen: "127.0.0.1:{ADMIN}"),\n'
        "    watch: false,",
    )
    text = text.replace('Static(root: "www")', f'Static(root: "{HERE / "www"}")')
    assert text.count("/r99/") == 1 and "admin:" in text, "config.ron changed shape"
    return text


def write_config(path: pathlib.Path, generation: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(config_text(generation))
    os.replace(tmp, path)


def get(conn: http.client.HTTPConnection, path: str) -> bytes:
    conn.request("GET", path)
    return conn.getresponse().read()


def post(conn: http.client.HTTPConnection, path: str) -> int:
    conn.request("POST", path, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    return resp.status


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def summary(name, samples):
    ms = [x * 1e3 for x in samples]
    return (
        f"RESULT reload {name} n={len(ms)} p50_ms={statistics.median(ms):.2f} "
        f"p99_ms={pct(ms, 99):.2f} max_ms={max(ms):.2f}"
    )


def measure(dir_: pathlib.Path, pid: int) -> None:
    cfg = dir_ / "config.ron"
    serve = http.client.HTTPConnection("127.0.0.1", PORT)
    admin = http.client.HTTPConnection("127.0.0.1", ADMIN)
    # SIGHUP → /probe answers the new generation.
    samples = []
    for gen in range(2, 2 + int(os.environ.get("SIGHUPS", "200"))):
        write_config(cfg, gen)
        want = f"generation {gen}".encode()
        start = time.perf_counter()
        os.kill(pid, signal.SIGHUP)
        while get(serve, "/probe") != want:
            if time.perf_counter() - start > 5:
                sys.exit(f"generation {gen} never served")
        samples.append(time.perf_counter() - start)
    print(summary(f"sighup-to-serving routes={ROUTES + 4}", samples), flush=True)
    # One module reloaded, through the admin API (answered once swapped in).
    for module in ["lua", "wasm"]:
        samples = []
        for _ in range(int(os.environ.get("MODULE_RELOADS", "100"))):
            start = time.perf_counter()
            status = post(admin, f"/modules/{module}/reload")
            samples.append(time.perf_counter() - start)
            if status != 200:
                sys.exit(f"reloading {module}: {status}")
        print(summary(f"module={module}", samples), flush=True)


def loop(dir_: pathlib.Path, pid: int) -> None:
    cfg = dir_ / "config.ron"
    admin = http.client.HTTPConnection("127.0.0.1", ADMIN)
    gen, n = 10_000, 0
    while True:
        time.sleep(1)
        n += 1
        if n % 2:
            post(admin, "/modules/lua/reload")
        else:
            gen += 1
            write_config(cfg, gen)
            os.kill(pid, signal.SIGHUP)
        print(f"reload {n}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    what, dir_ = sys.argv[1], pathlib.Path(sys.argv[2])
    if what == "config":
        write_config(dir_ / "config.ron", 1)
    elif what == "measure":
        measure(dir_, int(sys.argv[3]))
    elif what == "loop":
        loop(dir_, int(sys.argv[3]))
    else:
        sys.exit(__doc__)
