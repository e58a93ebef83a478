-- A GET with a bearer token (args: token, path).
function init(args)
  token = args[1]
  path = args[2]
end

function request()
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
end
