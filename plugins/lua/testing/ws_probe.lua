-- ws_probe.lua: a Lua WebSocket module for tests/it/module_ws_lua.rs.
-- ws_open refuses ?refuse (403, with a body), accepts ?protocol=X with
-- that Sec-WebSocket-Protocol, fails ?fail, runs past its first slice
-- before it accepts ?slow, and loops until its budget stops it ?loop.
-- Messages: "loop" runs until its budget stops it, "fail" raises an
-- error, "bye" closes with 4000, "memory" grows past the VM's memory,
-- "slow" runs past its first slice and then answers "slow done",
-- "crawl" the same for longer (a module with a large budget); anything
-- else is echoed with its kind ("text:hi"). ws_close logs the code.

function ws_open(socket, req)
  if req:query_param("refuse") then
    return { status = 403, headers = { ["x-why"] = "refused" }, body = "go away\n" }
  end
  if req:query_param("fail") then
    error("ws_open failed on purpose")
  end
  if req:query_param("loop") then
    while true do end
  end
  if req:query_param("slow") then
    local n = 0
    for i = 1, 300000 do n = n + i end
  end
  local protocol = req:query_param("protocol")
  if protocol then
    return { headers = { ["sec-websocket-protocol"] = protocol } }
  end
end

function ws_message(socket, data, kind)
  if data == "loop" then
    while true do end
  elseif data == "fail" then
    error("ws_message failed on purpose")
  elseif data == "bye" then
    troupe.ws.close(socket, 4000, "bye")
  elseif data == "memory" then
    local t = {}
    for i = 1, 1e9 do t[i] = string.rep("x", 1024) .. i end
  elseif data == "crawl" then
    local n = 0
    for i = 1, 5000000 do n = n + i end
    troupe.ws.send(socket, "crawl done")
  elseif data == "slow" then
    local n = 0
    for i = 1, 300000 do n = n + i end
    troupe.ws.send(socket, "slow done")
  else
    troupe.ws.send(socket, kind .. ":" .. data, kind)
  end
end

function ws_close(socket, code)
  troupe.log("ws_probe.lua closed " .. socket .. " with " .. code)
end
