-- GET /hello/lua?name=you: a Lua handler using a query parameter and the
-- key-value store that every module (C, Rust, WebAssembly, Lua) shares.

local greeting = troupe.config ~= "" and troupe.config or "Hello"

function handle(req)
  -- Decoded as in every module language: ?name=J%C3%BCrgen+X is "Jürgen X".
  local name = req:query_param("name") or "world"
  -- Counts visits per name in the shared store (per server, not per VM).
  local key = "hello_lua.visits." .. name
  local visits = tonumber(troupe.kv.get(key) or "0") + 1
  troupe.kv.set(key, tostring(visits))
  troupe.metric("greetings")
  return {
    status = 200,
    headers = { ["content-type"] = "text/plain; charset=utf-8" },
    body = string.format("%s, %s, from Lua! (visit %d)\n", greeting, name, visits),
  }
end
