-- sscard bench lookups --think-ms T: lookups.lua's requests, each connection pausing before its next request
-- for a time drawn at random around T ms (exponential: independent people at windows and outlets, not a
-- flood); wrk's latency counts from each request's send to its answer, pauses excluded
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "lookups.lua")
local think_ms = 0
local lookups_init = init

function init(args)
  lookups_init(args)
  think_ms = tonumber(args[2])
  math.randomseed(id * 7919 + 1)
end

function delay()
  return math.floor(-math.log(1 - math.random()) * think_ms + 0.5)
end
