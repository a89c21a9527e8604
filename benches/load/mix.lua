-- wrk script for benches/load/fairness.sh: each connection cycles through
-- the good routes, one request each.
local paths = { "/hello", "/mod-c", "/lua", "/wasm" }
local i = 0

request = function()
  i = i % #paths + 1
  return wrk.format(nil, paths[i])
end
