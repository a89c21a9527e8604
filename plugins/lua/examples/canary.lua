-- Middleware: steers canary traffic to its own upstream group. On a route
-- whose handler is Proxy(upstream: "app"), a request with `x-canary: 1`
-- goes to the group named by the module's `config` ("canary" when empty);
-- any other request goes to the route's own group.

local group = (troupe.config or "") ~= "" and troupe.config or "canary"

function access(req)
  if req:header("x-canary") == "1" then
    req:set_upstream(group)
  end
  -- nil: go on to the handler (the proxy), to the chosen group
end
