-- sscard bench (f): the counter mix from a file of "expected status<TAB>kind<TAB>path<TAB>token<TAB>JSON body"
-- lines; thread i of n sends lines i+1, i+1+n, ... in order (each replacement once), each POST with an
-- Idempotency-Key of its own (args: the file, the number of threads, a nonce that keeps this run's keys apart)
local mine = {}
local at = 0
local n = 0
local prefix
bad = 0  -- globals: done() reads each thread's counts with thread:get
wrapped = 0
statuses = ""  -- the statuses refused, as "409 422 ..." (thread:get passes strings, not tables)
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(args[2])
  local i = 0
  for line in io.lines(args[1]) do
    if i % nthreads == id then
      local status, kind, path, token, body = line:match("^(%d+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t(.+)$")
      table.insert(mine, {tonumber(status), path, "Bearer " .. token, body, kind})
    end
    i = i + 1
  end
  prefix = "wrk-" .. args[3] .. "-" .. id .. "-"
end

function request()
  at = at + 1
  if at > #mine then
    at = 1
    wrapped = wrapped + 1
  end
  n = n + 1
  local l = mine[at]
  return wrk.format("POST", l[2], {["Authorization"] = l[3], ["Content-Type"] = "application/json",
                                   ["Idempotency-Key"] = prefix .. n}, l[4])
end

function response(status, headers, body)
  if status ~= 200 and status ~= 201 then
    bad = bad + 1
    if #statuses < 400 then statuses = statuses .. status .. ":" .. (body or ""):sub(1, 40):gsub('[^%w_:]', '') .. " " end
  end
end

function done(summary, latency, requests)
  local refused, wraps, seen = 0, 0, ""
  for _, t in ipairs(threads) do
    refused = refused + t:get("bad")
    wraps = wraps + t:get("wrapped")
    seen = seen .. t:get("statuses")
  end
  local e = summary.errors
  io.write(string.format(
    'SSCARD {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"mean_us": %.1f, "non_200": %d, "socket_errors": %d, "wrapped": %d, "refused": "%s"}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, refused, e.connect + e.read + e.write + e.timeout, wraps, seen:sub(1, 400)))
end
