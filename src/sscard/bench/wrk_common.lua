-- Shared by sscard's wrk scripts (loaded with dofile by each): every thread's id and count of requests not
-- answered as the script expects (`bad`, a global each thread keeps), and the one line "SSCARD {json}" of
-- the run's figures that common.wrk reads.
bad = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- the figures; `more(threads)`, if given, returns more JSON fields (", \"name\": value...") of the threads'
function report(summary, latency, more)
  local refused = 0
  for _, t in ipairs(threads) do refused = refused + t:get("bad") end
  local e = summary.errors
  io.write(string.format(
    'SSCARD {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"mean_us": %.1f, "non_200": %d, "socket_errors": %d%s}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, refused, e.connect + e.read + e.write + e.timeout, more and more(threads) or ""))
end

function done(summary, latency, requests)
  report(summary, latency)
end
