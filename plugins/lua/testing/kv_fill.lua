-- TEST-ONLY: writes the shared store on request, to prove each module's
-- store quota (`kv` in its config).
--   ?key=K&bytes=N  stores N bytes under K: "stored", or 507 with the
--                   refusal troupe.kv.set answered (`nil, why`)
--   ?key=K          answers K's length, or 404 when it is absent

function handle(req)
  local key = req:arg("key") or "k"
  local n = tonumber(req:arg("bytes") or "")
  if not n then
    local value = troupe.kv.get(key)
    if value == nil then return { status = 404, body = "absent\n" } end
    return #value .. "\n"
  end
  local ok, why = troupe.kv.set(key, string.rep("x", n))
  if ok then return "stored\n" end
  return { status = 507, body = "refused: " .. tostring(why) .. "\n" }
end
