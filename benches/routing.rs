//! Micro-benchmarks of the request path's pure parts: path normalization,
//! virtual-host selection, route lookup, and dispatch through a route's
//! middleware chain to its handler.
//!
//! `cargo bench --bench routing`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::Method;
use troupe::{Next, Request, pipeline::path};

const CONFIG: &str = r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    servers: [
        (names: ["a.test"], routes: [(path: "/", handler: Return(body: "a"))]),
        (names: ["*.b.test"], routes: [(path: "/", handler: Return(body: "b"))]),
        (names: ["bench.test"], default: true, routes: [
            (path: "/hello", handler: Return(body: "Hello, World!\n")),
            (path: "/users/{id}", handler: Return(body: "$param_id")),
            (path: "/users/{id}/posts/{post}", handler: Return(body: "post")),
            (path: "/api/v1/items", handler: Return(body: "items")),
            (path: "/api/v1/items/{id}", handler: Return(body: "item")),
            (path: "/assets/{*path}", handler: Return(body: "asset")),
            (regex: "^/legacy/(\\d+)$", handler: Return(body: "legacy")),
            (path: "/mw", handler: Return(body: "mw"), middleware: [
                SetHeaders({ "x-a": "1" }),
                RequireHeader(header: "host"),
            ]),
        ]),
    ],
)"#;

fn snapshot() -> troupe::pipeline::snapshot::Snapshot {
    troupe::config::load_str(CONFIG, std::path::Path::new("bench.ron"))
        .expect("bench config")
        .snapshot
}

fn request(uri: &str) -> Request {
    let (head, ()) = http::Request::get(uri)
        .header("host", "bench.test")
        .body(())
        .expect("request")
        .into_parts();
    Request::from_parts(head)
}

fn lookup(c: &mut Criterion) {
    let snap = snapshot();
    let server = snap.servers.select(|| Some("bench.test"));
    let mut g = c.benchmark_group("route_lookup");
    for (name, p) in [
        ("exact", "/hello"),
        ("param", "/users/42/posts/7"),
        ("catch_all", "/assets/css/site.css"),
        ("regex", "/legacy/123"),
        ("miss", "/nothing/here"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| black_box(server.routes.lookup(&Method::GET, black_box(p))))
        });
    }
    g.finish();
}

fn host_and_path(c: &mut Criterion) {
    let snap = snapshot();
    c.bench_function("vhost_select_wildcard", |b| {
        b.iter(|| black_box(snap.servers.select(|| black_box(Some("x.b.test:8080")))))
    });
    c.bench_function("path_normalize_clean", |b| {
        b.iter(|| black_box(path::normalize(black_box("/assets/css/site.css"))))
    });
    c.bench_function("path_normalize_dirty", |b| {
        b.iter(|| {
            black_box(path::normalize(black_box(
                "/assets/./css/../css/%73ite.css",
            )))
        })
    });
}

/// Lookup plus the route's chain, for routes whose chain answers at once
/// (as the connection layer runs it: synchronously, no runtime involved).
fn dispatch(c: &mut Criterion) {
    let snap = snapshot();
    let server = snap.servers.select(|| Some("bench.test"));
    let mut g = c.benchmark_group("dispatch");
    for (name, uri) in [
        ("return", "/hello"),
        ("template", "/users/42"),
        ("two_middleware", "/mw"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let troupe::pipeline::routes::Match::Found { route, params } =
                    server.routes.lookup(&Method::GET, uri)
                else {
                    panic!("bench route missing");
                };
                let mut req = request(uri);
                req.set_params(params);
                let mut fut = if route.middleware.is_empty() {
                    route.handler.call(req)
                } else {
                    Next::new(route.middleware.clone(), route.handler.clone()).run(req)
                };
                black_box(fut.take_ready().expect("ready").expect("response"))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, lookup, host_and_path, dispatch);
criterion_main!(benches);
