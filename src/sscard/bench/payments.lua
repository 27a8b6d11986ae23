-- sscard bench (c): one-step POS payments, each with an Idempotency-Key of its own, from a file of
-- "pan<TAB>pin" lines (args: the file, the POS's API token, a nonce that keeps this run's keys apart)
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")
local lines = {}
local n = 0
local token, prefix

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
