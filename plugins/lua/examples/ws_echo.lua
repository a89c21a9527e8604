-- ws_echo.lua: a WebSocket echo in Lua. Every message comes back as it
-- came, text as text and binary as binary. Route it with
--   (path: "/ws/lua/echo", handler: WebSocket(module: "ws_echo_lua"))
-- Troupe does the handshake and the framing; the script sees whole
-- messages. No ws_open: every socket is accepted.

function ws_message(socket, data, kind)
  -- nil, why ("gone", "full") when the client left or stopped reading.
  local ok, why = troupe.ws.send(socket, data, kind)
  if not ok then
    troupe.log("debug", "echo not sent: " .. why)
  end
end
