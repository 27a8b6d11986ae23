-- sscard bench (f): the counter mix from a file of "expected status<TAB>kind<TAB>path<TAB>token<TAB>JSON body"
-- lines; thread i of n sends lines i+1, i+1+n, ... in order (each replacement once), each POST with an
-- Idempotency-Key of its own (args: the file, the number of threads, a nonce that keeps this run's keys apart)
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")
local mine = {}
local at = 0
local n = 0
local prefix
wrapped = 0  -- globals: done() reads each thread's with thread:get
statuses = ""  -- the statuses refused, as "409 422 ..." (thread:get passes strings, not tables)

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
  report(summary, latency, function(threads)
    local wraps, seen = 0, ""
    for _, t in ipairs(threads) do
      wraps = wraps + t:get("wrapped")
      seen = seen .. t:get("statuses")
    end
    return string.format(', "wrapped": %d, "refused": "%s"', wraps, seen:sub(1, 400))
  end)
end
