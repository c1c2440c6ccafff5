-- POST /users with a new name each time, with the bearer token in TOKEN.
local token = os.getenv("TOKEN") or ""
local n = 0

request = function()
  n = n + 1
  local headers = {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}
  return wrk.format("POST", "/users", headers, '{"name":"bench user ' .. n .. '"}')
end
