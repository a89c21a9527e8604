//! Between Troupe's types and Lua's: the `req` a script sees, and the
//! response table it returns.
//!
//! `req` is a userdata rather than a table: fields are made when a script
//! reads them, so a handler that ignores the headers never pays for them.
//! `req.method`, `req.path`, `req.body`, `req.peer`, `req.query`,
//! `req.headers`, `req.params` (the last three are tables), and the
//! shortcuts `req:header(name)`, `req:query_param(name)` (also
//! `req:arg(name)`), `req:param(name)`, and, in `access`,
//! `req:set_upstream(group)` and `req:set_rate_key(key)`. Query values are decoded by the
//! rules every module language shares (`crate::pipeline::request::query_param`).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use mlua::{Lua, Table, UserData, UserDataFields, UserDataMethods, Value};

use crate::{
    HttpError, handler::Response, modules::instance::into_response, pipeline::log_hook::LogLine,
    pipeline::request::Request,
};

/// Lua strings made once per VM: making one from Rust per use costs a
/// protected call and an allocation.
pub struct Keys {
    pub(super) status: mlua::LuaString,
    pub(super) headers: mlua::LuaString,
    pub(super) body: mlua::LuaString,
}

/// The request, lent to a script for a call, and the module's name. A
/// script must not keep `req` past its call: it may find it empty, or
/// holding a later request.
pub struct LuaRequest(pub Option<Request>, pub std::sync::Arc<str>);

impl LuaRequest {
    fn get(&self) -> mlua::Result<&Request> {
        self.0.as_ref().ok_or_else(|| {
            mlua::Error::runtime("req is only valid during the call it was passed to")
        })
    }
}

impl UserData for LuaRequest {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("method", |_, r| Ok(r.get()?.method().as_str().to_owned()));
        fields.add_field_method_get("path", |_, r| Ok(r.get()?.path().to_owned()));
        fields.add_field_method_get("peer", |_, r| Ok(r.get()?.peer().to_string()));
        fields.add_field_method_get("body", |lua, r| lua.create_string(r.get()?.body()));
        fields.add_field_method_get("query", |lua, r| {
            let t = lua.create_table()?;
            for (k, v) in r.get()?.query_pairs() {
                // The first value wins, as with `req:arg`.
                if !t.contains_key(&*k)? {
                    t.set(&*k, &*v)?;
                }
            }
            Ok(t)
        });
        fields.add_field_method_get("headers", |lua, r| {
            let t = lua.create_table()?;
            for (k, v) in r.get()?.headers() {
                if !t.contains_key(k.as_str())? {
                    t.set(k.as_str(), lua.create_string(v.as_bytes())?)?;
                }
            }
            Ok(t)
        });
        fields.add_field_method_get("params", |lua, r| {
            let t = lua.create_table()?;
            for (k, v) in r.get()?.params() {
                t.set(k, v)?;
            }
            Ok(t)
        });
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("header", |lua, r, name: String| {
            match r.get()?.headers().get(name.as_str()) {
                Some(v) => Ok(Value::String(lua.create_string(v.as_bytes())?)),
                None => Ok(Value::Nil),
            }
        });
        // `query_param` is the name every module language uses; `arg`
        // (nginx's word) came first and stays.
        for name in ["query_param", "arg"] {
            methods.add_method(name, |_, r, name: String| {
                Ok(r.get()?.query_param(&name).map(|v| v.into_owned()))
            });
        }
        methods.add_method("param", |_, r, name: String| {
            Ok(r.get()?.param(&name).map(str::to_owned))
        });
        // In `access`: the upstream group for this request, on a route
        // whose handler is `Proxy(..)` (others ignore it).
        methods.add_method_mut("set_upstream", |_, r, name: String| {
            let module = r.1.clone();
            let req = r.0.as_mut().ok_or_else(|| {
                mlua::Error::runtime("req is only valid during the call it was passed to")
            })?;
            crate::proxy::UpstreamChoice::set(req, &module, name);
            Ok(())
        });
        // In `access`: the key of this request in the rate zones keyed by
        // `Module` (any bytes; the last call wins).
        methods.add_method_mut("set_rate_key", |_, r, key: mlua::LuaString| {
            let req = r.0.as_mut().ok_or_else(|| {
                mlua::Error::runtime("req is only valid during the call it was passed to")
            })?;
            req.extensions_mut()
                .insert(crate::limit::ModuleKey(key.as_bytes().to_vec().into()));
            Ok(())
        });
    }
}

fn bad(why: &str) -> HttpError {
    HttpError::Internal(format!(
        "the Lua script returned an invalid response: {why}"
    ))
}

/// Reads `status` and `headers` from a response table.
pub fn head_of(
    t: &Table,
    keys: &Keys,
    default: StatusCode,
) -> Result<(StatusCode, HeaderMap), HttpError> {
    let status = match t.raw_get::<Option<u16>>(&keys.status) {
        Ok(Some(code)) => StatusCode::from_u16(code).map_err(|_| bad("status out of range"))?,
        Ok(None) => default,
        Err(_) => return Err(bad("status is not a number")),
    };
    let mut headers = HeaderMap::new();
    if let Ok(Some(list)) = t.raw_get::<Option<Table>>(&keys.headers) {
        let mut failed = None;
        // `for_each` reads keys straight off the Lua stack; `pairs()`
        // made a registry reference per key and value.
        let walked = list.for_each::<String, Value>(|name, value| {
            if let Err(e) = append(&mut headers, &name, value) {
                failed.get_or_insert(e);
            }
            Ok(())
        });
        if let Some(e) = failed {
            return Err(e);
        }
        walked.map_err(|_| bad("header names must be strings"))?;
    }
    Ok((status, headers))
}

/// Appends one `headers` entry: a string, a number, or a list of strings
/// (`["set-cookie"] = { "a=1", "b=2" }` sends the field twice).
fn append(headers: &mut HeaderMap, name: &str, value: Value) -> Result<(), HttpError> {
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("invalid header name"))?;
    let mut one = |bytes: &[u8]| -> Result<(), HttpError> {
        let v = HeaderValue::from_bytes(bytes).map_err(|_| bad("invalid header value"))?;
        headers
            .try_append(name.clone(), v)
            .map_err(|_| bad("too many headers"))
            .map(|_| ())
    };
    match value {
        Value::String(v) => one(&v.as_bytes()),
        Value::Integer(n) => one(n.to_string().as_bytes()),
        Value::Table(many) => {
            for v in many.sequence_values::<mlua::LuaString>() {
                one(&v
                    .map_err(|_| bad("header values must be strings"))?
                    .as_bytes())?;
            }
            Ok(())
        }
        _ => Err(bad("header values must be strings")),
    }
}

/// A handler's result: a table `{ status, headers, body }`, or a string
/// (the body of a 200).
pub fn response(value: Value, keys: &Keys) -> Result<Response, HttpError> {
    match value {
        Value::String(body) => Ok(into_response(
            StatusCode::OK,
            HeaderMap::new(),
            body.as_bytes().to_vec(),
        )),
        Value::Table(t) => {
            let (status, headers) = head_of(&t, keys, StatusCode::OK)?;
            let body = match t.raw_get::<Value>(&keys.body) {
                Ok(Value::String(b)) => Bytes::copy_from_slice(&b.as_bytes()),
                Ok(Value::Nil) => Bytes::new(),
                Ok(other) => Bytes::from(other.to_string().map_err(|_| bad("body"))?),
                Err(_) => return Err(bad("body")),
            };
            let mut resp = http::Response::new(crate::Body::full(body));
            *resp.status_mut() = status;
            *resp.headers_mut() = headers;
            Ok(resp)
        }
        Value::Nil => Err(bad("nothing (expected a table or a string)")),
        _ => Err(bad("expected a table or a string")),
    }
}

/// A response head as the `header_filter` hook sees it.
pub fn head_table(lua: &Lua, resp: &Response) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("status", resp.status().as_u16())?;
    let headers = lua.create_table()?;
    for (k, v) in resp.headers() {
        headers.set(k.as_str(), lua.create_string(v.as_bytes())?)?;
    }
    t.set("headers", headers)?;
    Ok(t)
}

/// A finished request as the `log` hook sees it.
pub fn log_table(lua: &Lua, line: &LogLine) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("method", line.method.as_str())?;
    t.set("path", line.path.as_str())?;
    t.set("query", line.query.as_str())?;
    t.set("peer", line.peer.to_string())?;
    t.set("status", line.status)?;
    t.set("bytes", line.bytes)?;
    t.set(
        "duration_us",
        u64::try_from(line.duration.as_micros()).unwrap_or(u64::MAX),
    )?;
    Ok(t)
}
