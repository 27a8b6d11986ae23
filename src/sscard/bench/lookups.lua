-- sscard bench lookups: one GET a request, from a file of "path<TAB>token" lines, each thread from its own offset
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")
local lines = {}
local at = 0

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
