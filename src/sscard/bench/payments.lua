-- sscard bench (c): one-step POS payments, each with an Idempotency-Key of its own, from a file of
-- "pan<TAB>pin" lines (args: the file, the POS's API token, a nonce that keeps this run's keys apart)
local lines = {}
local n = 0
local token, prefix
bad = 0  -- a global: done() reads each thread's count with thread:get
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    local pan, pin = line:match("^([^\t]+)\t(.+)$")
    table.insert(lines, {pan, pin})
  end
  token = "Bearer " .. args[2]
  prefix = "wrk-" .. args[3] .. "-" .. id .. "-"
  math.randomseed(id * 7919 + #args[3])
end

function request()
  n = n + 1
  local l = lines[math.random(#lines)]
  local body = string.format('{"pan":"%s","amount_fen":%d,"pin":"%s"}', l[1], math.random(1, 500), l[2])
  return wrk.format("POST", "/api/v1/terminal/payments",
    {["Authorization"] = token, ["Content-Type"] = "application/json", ["Idempotency-Key"] = prefix .. n}, body)
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
