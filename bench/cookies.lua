-- wrk script of bench/run.sh: every request carries a Cookie header drawn at
-- random from a file (one `name=value` per line), so a store with many live
-- sessions is hit all over, as real traffic would. Scenarios without sessions
-- use a file of look-alike cookies under another name, so that wrk does the
-- same work and sends the same bytes in every scenario.
--
--   wrk -t1 -c64 -d10s -s cookies.lua http://127.0.0.1:PORT/path -- cookies.txt [sequential]
--
-- A line of the form `Name: value` is sent as that header instead of a
-- cookie (the bearer token rows). With `sequential`, lines are taken in order,
-- each once until the file is used up (the first-token rows: every request a
-- token sessiongate has not seen).
--
-- At the end it prints one line `RESULT {json}` with exact figures.

local cookies = {}
local n = 0
local sequential = false
local next_line = 0

function init(args)
  local path = args[1]
  sequential = args[2] == "sequential"
  if not path then
    error("cookies.lua: pass the cookie file after --")
  end
  local f = assert(io.open(path, "r"))
  for line in f:lines() do
    if #line > 0 then
      n = n + 1
      cookies[n] = line
    end
  end
  f:close()
  if n == 0 then
    error("cookies.lua: no cookies in " .. path)
  end
  -- Seed per thread so threads do not replay the same sequence.
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end

-- Headers given with -H (an Authorization for the credentials rows): wrk drops
-- them when request() passes its own table, so they are added to it.
local extra = nil

function request()
  if extra == nil then
    extra = {}
    for k, v in pairs(wrk.headers) do
      if k ~= "Host" then extra[k] = v end
    end
  end
  local line
  if sequential then
    next_line = next_line % n + 1
    line = cookies[next_line]
  else
    line = cookies[math.random(n)]
  end
  local h = {}
  local name, value = line:match("^([%w-]+): (.*)$")
  if name then h[name] = value else h["Cookie"] = line end
  for k, v in pairs(extra) do h[k] = v end
  return wrk.format(nil, nil, h)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
