-- POST /user/login as one of the seeded users (seed0 … seedN-1), round robin.
local n = 0
function init(args)
  users = tonumber(args[1])
  n = math.random(0, users - 1)
end

function request()
  n = (n + 1) % users
  local body = '{"username":"seed' .. n .. '","password":"correct horse"}'
  return wrk.format("POST", "/user/login", { ["Content-Type"] = "application/json" }, body)
end
