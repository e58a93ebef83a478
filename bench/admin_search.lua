-- GET /admin/users?query=… with a bearer token (args: token), cycling through
-- prefixes of the seeded names (seedN): from one account to a tenth of them,
-- in any case, by username and by email.
local queries = { "seed4242", "SEED77", "seed123", "seed5", "seed99999@", "Seed31337", "seed8080", "seed2" }
local n = 0

function init(args)
  token = args[1]
end

function request()
  n = n + 1
  local q = queries[(n % #queries) + 1]
  return wrk.format("GET", "/admin/users?limit=50&query=" .. q, { ["Authorization"] = "Bearer " .. token })
end
