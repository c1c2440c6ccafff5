-- GET /users/{random id in 1..USERS}, with the bearer token in TOKEN.
local users = tonumber(os.getenv("USERS") or "100000")
local token = os.getenv("TOKEN") or ""
math.randomseed(os.time())

request = function()
  local headers = {["Authorization"] = "Bearer " .. token}
  return wrk.format("GET", "/users/" .. math.random(1, users), headers)
end
