-- The `lua` scenario of ../shared/bench/compare: the hello answer produced
-- by a Lua handler (nginx's side uses content_by_lua_block).
local headers = { ["content-type"] = "text/plain" }

function handle(req)
  return { status = 200, headers = headers, body = "Hello, World!\n" }
end
