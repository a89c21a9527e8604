-- TEST-ONLY: a handler that misbehaves on request, to prove the sandbox.
--   ?do=error   raises an error (500)
--   ?do=loop    never returns (504 when the instruction budget runs out)
--   ?do=memory  allocates without bound (500 at the memory limit)
--   ?do=os      tries the os library, which is not granted (500)
--   ?key=K      answers the shared store's value for K
--   ?key=K&set=V sets it first
--   anything else: "ok"

function handle(req)
  local what = req:arg("do")
  if what == "error" then
    error("asked to fail")
  elseif what == "loop" then
    while true do end
  elseif what == "memory" then
    local t = {}
    while true do t[#t + 1] = string.rep("x", 64 * 1024) .. #t end
  elseif what == "os" then
    return os.getenv("HOME")
  end
  local key = req:arg("key")
  if key then
    local set = req:arg("set")
    if set then troupe.kv.set(key, set) end
    return troupe.kv.get(key) or ""
  end
  return "ok\n"
end
