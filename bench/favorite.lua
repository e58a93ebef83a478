-- POST /user/track/favorite with a distinct track id per request, per thread.
local counter = 0
local prefix = "t"

function setup(thread)
  thread:set("prefix", "w" .. tostring(math.random(1, 1e9)) .. "-")
end

function init(args)
  prefix = wrk.thread:get("prefix") or prefix
  token = args[1]
end

function request()
  counter = counter + 1
  return wrk.format("POST", "/user/track/favorite?track_id=" .. prefix .. counter,
    { ["Authorization"] = "Bearer " .. token })
end
