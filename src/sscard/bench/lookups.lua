-- sscard bench lookups: one GET a request, from a file of "path<TAB>token" lines, each thread from its own offset
local lines = {}
local at = 0
bad = 0  -- a global: done() reads each thread's count with thread:get
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    local path, token = line:match("^([^\t]+)\t(.+)$")
    table.insert(lines, {path, "Bearer " .. token})
  end
  at = (id * 7919) % #lines
end

function request()
  at = at % #lines + 1
  local l = lines[at]
  return wrk.format("GET", l[1], {["Authorization"] = l[2]})
end

function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end

function done(summary, latency, requests)
  local refused = 0
  for _, t in ipairs(threads) do refused = refused + t:get("bad") end
  local e = summary.errors
  io.write(string.format(
    'SSCARD {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"mean_us": %.1f, "non_200": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, refused, e.connect + e.read + e.write + e.timeout))
end
