-- One request shape per run, configured by environment variables:
--   WRK_METHOD, WRK_BODY, WRK_CONTENT_TYPE (default: a form), WRK_HEADERS
--   ("Name: value|Name: value"), WRK_EXPECT (status),
--   WRK_TOKENS (file of refresh tokens: each is sent once, so rotation is exercised),
--   WRK_SUMMARY (where done() writes its JSON line).
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  method = os.getenv("WRK_METHOD") or "GET"
  body = os.getenv("WRK_BODY")
  expect = tonumber(os.getenv("WRK_EXPECT") or "200")
  headers = {}
  for pair in string.gmatch(os.getenv("WRK_HEADERS") or "", "[^|]+") do
    local name, value = string.match(pair, "^%s*(.-)%s*:%s*(.-)%s*$")
    headers[name] = value
  end
  if body then
    headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE") or "application/x-www-form-urlencoded"
  end
  errors = 0
  tokens = nil
  local path = os.getenv("WRK_TOKENS")
  if path then
    tokens = {}
    local n = 0
    local stride = tonumber(os.getenv("WRK_THREADS") or "1")
    for line in io.lines(path) do
      if n % stride == id then table.insert(tokens, line) end
      n = n + 1
    end
    cursor = 0
  end
end

function request()
  local payload = body
  if tokens then
    cursor = cursor + 1
    payload = "grant_type=refresh_token&refresh_token=" .. tokens[((cursor - 1) % #tokens) + 1]
  end
  return wrk.format(method, nil, headers, payload)
end

function response(status, hdrs, resp_body)
  if status ~= expect then errors = errors + 1 end
end

function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do failed = failed + (thread:get("errors") or 0) end
  local out = io.open(os.getenv("WRK_SUMMARY"), "w")
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, failed,
    -- errors.status would count again what response() counted (an unexpected status)
    summary.errors.connect + summary.errors.read + summary.errors.write +
      summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
  out:close()
end
