-- TEST ONLY (tests/it/rate_key.rs): middleware that chooses the request's
-- rate-limit key, for zones keyed by `Module`: the value of `x-user` when
-- the request has one, else the segment after `/u/` in the path
-- (`/u/alice/...` is "alice"), else none (not limited by such a zone).

function access(req)
  local user = req:header("x-user")
  if user == nil then
    user = string.match(req.path, "^/u/([^/]+)")
  end
  if user ~= nil then
    req:set_rate_key(user)
  end
end
