-- GET /admin/users?query=… with a bearer token (args: token, "specific" or
-- "broad"), cycling through prefixes of the seeded names (seedN, seedN@…):
-- specific ones, as an operator types a name or an address (1–2,000
-- matches at 1,000,000 accounts), or broad ones (11,000–111,000 matches).
local sets = {
  specific = { "seed4242", "Seed31337", "seed99999@", "seed8080", "seed123", "SEED55555", "seed1000" },
  broad = { "seed5", "SEED77", "seed2", "seed31" },
}
local n = 0

function init(args)
  token = args[1]
  queries = sets[args[2]]
end

function request()
  n = n + 1
  local q = queries[(n % #queries) + 1]
  return wrk.format("GET", "/admin/users?limit=50&query=" .. q, { ["Authorization"] = "Bearer " .. token })
end
