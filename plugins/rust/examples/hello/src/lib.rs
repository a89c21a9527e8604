//! `GET /hello/rust/{name}`: a Troupe module written with the Rust SDK.
//!
//! Answers JSON with the route's `name` (or, on a route without one, the
//! decoded `name` query parameter: `/hello/rust?name=you`), the name the
//! previous visitor used
//! (kept in the shared key-value store, which every module can read), and
//! counts greetings in a metric.

use troupe_module::{Error, Host, Level, Module, Request, Response, export_module};

/// The store key holding the last name greeted.
const LAST: &str = "hello_rust.last_name";

struct HelloRust {
    host: Host,
    greeting: String,
}

impl Module for HelloRust {
    fn init(host: Host, config: &str) -> Result<Self, Error> {
        let greeting = match config {
            "" => "Hello".to_owned(),
            text => {
                let cfg: serde_json::Value = serde_json::from_str(text)?;
                cfg["greeting"].as_str().unwrap_or("Hello").to_owned()
            }
        };
        host.log(Level::Info, "hello_rust ready");
        Ok(Self { host, greeting })
    }

    fn handle(&self, req: &Request<'_>, resp: &mut Response<'_>) -> Result<(), Error> {
        let name = match req.param("name") {
            Some(name) => name.to_owned(),
            None => req.query_param("name").unwrap_or_else(|| "world".into()),
        };
        let previous = self
            .host
            .kv_get(LAST)
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        // A refusal (the module's store quota is used up) costs only the
        // next request's `previous`: greet anyway, and say so in the log.
        if let Err(e) = self.host.kv_set(LAST, name.as_bytes()) {
            self.host.log(Level::Warn, &format!("not remembered: {e}"));
        }
        self.host.metric("greetings", 1);
        let body = serde_json::json!({
            "greeting": format!("{}, {name}!", self.greeting),
            "name": name,
            "previous": previous,
            "module": "hello_rust",
        });
        resp.set_status(200)
            .header("content-type", "application/json")
            .body(format!("{body}\n"));
        Ok(())
    }
}

export_module!(HelloRust);
