-- Middleware: lets a request through only with the right API key.
-- The key is the module's `config` in config.ron. Without it, or with a
-- wrong one, the request is answered here with 401 and never reaches the
-- route's handler; answers that pass are tagged by header_filter.

function access(req)
  if req:header("x-api-key") ~= troupe.config then
    return {
      status = 401,
      headers = { ["www-authenticate"] = 'ApiKey header="x-api-key"' },
      body = "missing or wrong API key\n",
    }
  end
  -- nil: go on to the handler
end

function header_filter(resp)
  resp.headers["x-checked-by"] = "api_key.lua"
end
