-- ws_room.lua: a WebSocket chat room in Lua. Every text message a client
-- sends goes to every open socket of the module, the sender's included,
-- as "<name>: <text>" (the name from ?name=, else "guest<socket>").
-- Route it with
--   (path: "/ws/lua/room", handler: WebSocket(module: "ws_room_lua"))
--
-- A socket's hooks may run on different VMs of the module's pool, and a
-- VM's globals are its own: so the room keeps nothing in globals. The
-- open sockets are the server's list (troupe.ws.sockets()), and what the
-- room knows of a socket (its name) is in the shared store, keyed by the
-- socket's id, until ws_close deletes it.

local MAX = tonumber(troupe.config) or 100

local function key(socket)
  return "ws_room_lua.name." .. socket
end

-- Accept (nil, or a table of headers for the 101) or refuse (a response
-- with a status from 300 on), as the handshake's answer.
function ws_open(socket, req)
  -- The list already holds the socket being opened.
  if #troupe.ws.sockets() > MAX then
    return { status = 503, body = "the room is full\n" }
  end
  troupe.kv.set(key(socket), req:query_param("name") or ("guest" .. socket))
end

function ws_message(socket, data, kind)
  if kind ~= "text" then
    return troupe.ws.close(socket, 1003, "text only")
  end
  local line = (troupe.kv.get(key(socket)) or "?") .. ": " .. data
  for _, other in ipairs(troupe.ws.sockets()) do
    -- A client that stopped reading misses messages, not the room.
    if not troupe.ws.send(other, line) then
      troupe.metric("missed")
    end
  end
end

function ws_close(socket, code)
  troupe.kv.delete(key(socket))
end
