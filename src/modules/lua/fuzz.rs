//! (feature `fuzzing`) A request as a Lua script sees it: the `req` a
//! hook gets ([`super::convert::LuaRequest`]), read back by a script
//! (`crate::fuzzing::module_request` checks what comes back).

use mlua::{Lua, LuaString, Table};

use super::convert::LuaRequest;
use crate::pipeline::request::Request;

/// What a script reads of a request.
#[derive(Debug)]
pub struct Seen {
    /// `req.method`.
    pub method: Vec<u8>,
    /// `req.path`.
    pub path: Vec<u8>,
    /// `req.body`.
    pub body: Vec<u8>,
    /// `req.peer`.
    pub peer: Vec<u8>,
    /// `req:header(name)` for each name asked, in order (`None`: nil).
    pub header: Vec<Option<Vec<u8>>>,
    /// `req.headers[name]` for the same names.
    pub table: Vec<Option<Vec<u8>>>,
}

const SCRIPT: &str = r#"
local req, names = ...
local one, all, headers = {}, {}, req.headers
for i, name in ipairs(names) do
  one[i] = req:header(name) or false
  all[i] = headers[name] or false
end
return req.method, req.path, req.body, req.peer, one, all
"#;

/// Runs the script on `req`, asking for the headers `names`.
pub fn seen(req: Request, names: &[&str]) -> Result<Seen, String> {
    let lua = Lua::new();
    let e = |e: mlua::Error| e.to_string();
    let names = lua.create_sequence_from(names.iter().copied()).map_err(e)?;
    let ud = lua
        .create_userdata(LuaRequest(Some(req), "fuzz".into()))
        .map_err(e)?;
    let (method, path, body, peer, one, all): (
        LuaString,
        LuaString,
        LuaString,
        LuaString,
        Table,
        Table,
    ) = lua.load(SCRIPT).call((ud, names.clone())).map_err(e)?;
    let list = |t: Table| -> Result<Vec<Option<Vec<u8>>>, String> {
        (1..=names.raw_len())
            .map(|i| match t.raw_get::<mlua::Value>(i).map_err(e)? {
                mlua::Value::String(s) => Ok(Some(s.as_bytes().to_vec())),
                _ => Ok(None),
            })
            .collect()
    };
    Ok(Seen {
        method: method.as_bytes().to_vec(),
        path: path.as_bytes().to_vec(),
        body: body.as_bytes().to_vec(),
        peer: peer.as_bytes().to_vec(),
        header: list(one)?,
        table: list(all)?,
    })
}
