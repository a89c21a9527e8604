//! Backends named `host:port` (nginx's `server app.internal:8080`) on the
//! real binary: resolved at config load, each address a backend with the
//! entry's weight, the name sent as SNI and (with `host: Backend`) in
//! `Host`, and a name that does not resolve refused with its position.
//! `localhost` resolves without a network; which addresses it resolves to
//! (127.0.0.1, and ::1 on some systems) is asked of the same resolver.

use std::{
    collections::BTreeSet,
    net::{SocketAddr, ToSocketAddrs},
    time::Duration,
};

use http::StatusCode;

use crate::{
    proxy::{start, url},
    support::{
        backend::{Behaviour, TestBackend, tls_server},
        client, daemon,
        tls::Pki,
    },
};

/// Starts a backend called `name` on every address `localhost:PORT`
/// resolves to, on one port; returns them, that port, and whether every
/// address has one (not where `localhost` names ::1 and IPv6 is off).
async fn on_localhost(name: &str, behaviour: Behaviour) -> (Vec<TestBackend>, u16, bool) {
    let first = TestBackend::start(name, behaviour.clone()).await;
    let port = first.addr.port();
    let mut all = vec![first];
    let mut every = true;
    for addr in ("localhost", port).to_socket_addrs().expect("localhost") {
        if all.iter().any(|b| b.addr == addr) {
            continue;
        }
        match std::net::TcpListener::bind(addr) {
            Ok(probe) => {
                drop(probe);
                all.push(TestBackend::start_on(name, addr, behaviour.clone()).await);
            }
            Err(_) => every = false,
        }
    }
    (all, port, every)
}

fn resolved(port: u16) -> BTreeSet<String> {
    ("localhost", port)
        .to_socket_addrs()
        .expect("localhost")
        .map(|a: SocketAddr| a.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_backend_is_resolved_into_one_backend_per_address() {
    let (local, port, every) = on_localhost("local", Behaviour::default()).await;
    let other = TestBackend::start("other", Behaviour::default()).await;
    let routes = r#"
        (path: "/pass/{*rest}", handler: Proxy(upstream: "app")),
        (path: "/named/{*rest}", handler: Proxy(upstream: "named", host: Backend)),
    "#;
    let (_dir, d) = start(
        &format!(
            r#""app": (backends: [(addr: "localhost:{port}", weight: 2), (addr: "{}")]),
               "named": (backends: [(addr: "localhost:{port}")]),"#,
            other.addr
        ),
        routes,
        r#"admin: (listen: "127.0.0.1:0"),"#,
    );
    // Every address of the name is a backend with the name's weight, and
    // the admin API says which name each came from.
    let admin = d.admin_addr();
    let status: serde_json::Value =
        serde_json::from_slice(&client::get(&format!("http://{admin}/upstreams")).await.body)
            .expect("json");
    let backends = status["app"]["backends"].as_array().expect("backends");
    let named: BTreeSet<String> = backends
        .iter()
        .filter(|b| b["host"] == "localhost")
        .map(|b| {
            assert_eq!(b["weight"], 2, "{status}");
            b["addr"].as_str().unwrap_or("").to_owned()
        })
        .collect();
    assert_eq!(named, resolved(port), "{status}");
    assert_eq!(backends.len(), named.len() + 1, "{status}");
    assert_eq!(backends.last().unwrap()["addr"], other.addr.to_string());
    assert!(backends.last().unwrap()["host"].is_null(), "{status}");

    // Weighted round-robin over them: 2 to each of the name's addresses
    // for 1 to the other (whole rounds, so the shares are exact).
    let round = 2 * named.len() + 1;
    let mut by = std::collections::BTreeMap::new();
    for _ in 0..3 * round {
        let r = client::get(&url(&d, "/pass/x")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", d.logs());
        *by.entry(r.header("x-backend").unwrap_or("?").to_owned())
            .or_insert(0) += 1;
    }
    if every {
        assert_eq!(by.get("local"), Some(&(6 * named.len())), "{by:?}");
        assert_eq!(by.get("other"), Some(&3), "{by:?}");
        for b in &local {
            assert_eq!(b.hits(), 6, "{} of {by:?}", b.addr);
        }
    } else {
        eprintln!(
            "localhost resolves to an address this system cannot listen on; shares not checked"
        );
    }

    // The Host: the client's by default; `host: Backend` sends the name
    // as configured, not the address it resolved to.
    let r = client::get(&url(&d, "/pass/headers")).await;
    assert!(
        r.text().contains(&format!("host: {}\n", d.addr)),
        "{}",
        r.text()
    );
    let r = client::get(&url(&d, "/named/headers")).await;
    assert!(
        r.text().contains(&format!("host: localhost:{port}\n")),
        "{}",
        r.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_https_backend_gets_its_name_as_sni_and_is_verified_for_it() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = Pki::new(dir.path());
    // A certificate for `localhost` (and no IP address).
    pki.reissue("a", "localhost");
    let tls = Behaviour {
        tls: Some(tls_server(&pki, "a", &["http/1.1"])),
        ..Behaviour::default()
    };
    let (_local, port, _) = on_localhost("secure", tls).await;
    let ca = pki.path("ca.pem");
    let (_dir, d) = start(
        &format!(
            r#""named": (backends: [(addr: "localhost:{port}")], tls: (ca: "{ca}")),
               "set": (backends: [(addr: "localhost:{port}")], tls: (ca: "{ca}", server_name: "a.test")),"#,
            ca = ca.display()
        ),
        r#"
        (path: "/named/{*rest}", handler: Proxy(upstream: "named")),
        (path: "/set/{*rest}", handler: Proxy(upstream: "set")),
        "#,
        "",
    );
    let r = client::get(&url(&d, "/named/x")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", d.logs());
    assert_eq!(r.header("x-sni"), Some("localhost"));
    // `server_name` still wins: sent, and the certificate (for
    // `localhost`) does not carry it.
    let r = client::get(&url(&d, "/set/x")).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    // The daemon's stderr is read by another thread: the line may come a
    // moment after the answer.
    assert!(
        d.wait_for_log("TLS handshake failed", Duration::from_secs(5)),
        "{}",
        d.logs()
    );
}

#[test]
fn a_name_that_does_not_resolve_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.ron");
    std::fs::write(
        &path,
        "Config(\n    listen: [\"127.0.0.1:0\"],\n    upstreams: {\n        \"app\": (backends: [\n            (addr: \"127.0.0.1:9\"),\n            (addr: \"no-such-host.invalid:80\"),\n        ]),\n    },\n    servers: [(routes: [(path: \"/\", handler: Proxy(upstream: \"app\"))])],\n)\n",
    )
    .unwrap();
    let (code, stderr) = daemon::check(&path);
    assert_eq!(code, Some(1), "{stderr}");
    let at = format!("{}:6:20: ", path.display());
    assert!(stderr.contains(&at), "expected `{at}` in {stderr}");
    assert!(
        stderr.contains("backend `no-such-host.invalid:80` of upstream `app` does not resolve"),
        "{stderr}"
    );
    // Not an address at all: the same, with what is expected.
    std::fs::write(
        &path,
        "Config(\n    listen: [\"127.0.0.1:0\"],\n    upstreams: { \"app\": (backends: [(addr: \"app.internal\")]) },\n    servers: [(routes: [(path: \"/\", handler: Proxy(upstream: \"app\"))])],\n)\n",
    )
    .unwrap();
    let (code, stderr) = daemon::check(&path);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3:44: ", path.display()))
            && stderr.contains("expected `ip:port` or `host:port`"),
        "{stderr}"
    );
}
