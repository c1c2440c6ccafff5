-- wrk requests for the users API.
-- SCENARIO: get, post, patch, list, mix (80 % reads), login (EMAIL, PASSWORD: a sign-in)
-- or healthz (no database); USERS: how many users are seeded (ids 1..USERS); TOKEN: the
-- bearer token, if any.
local scenario = os.getenv("SCENARIO") or "get"
local users = tonumber(os.getenv("USERS") or "100000")
local token = os.getenv("TOKEN")
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end

function init(args)
  math.randomseed(os.time() * 100 + seed)
end

local function headers(json)
  local h = {}
  if token and token ~= "" then h["Authorization"] = "Bearer " .. token end
  if json then h["Content-Type"] = "application/json" end
  return h
end

local function get() return wrk.format("GET", "/users/" .. math.random(users), headers()) end
local function list()
  return wrk.format("GET", "/users?limit=50&after=" .. math.random(0, users - 50), headers())
end
local function post()
  local body = '{"name":"bench ' .. math.random(1e9) .. '"}'
  return wrk.format("POST", "/users", headers(true), body)
end
local function patch()
  local body = '{"name":"renamed ' .. math.random(1e9) .. '"}'
  return wrk.format("PATCH", "/users/" .. math.random(users), headers(true), body)
end
local function mix()
  local roll = math.random(100)
  if roll <= 70 then return get() end
  if roll <= 80 then return list() end
  if roll <= 95 then return post() end
  return patch()
end

local function healthz() return wrk.format("GET", "/healthz") end

local function urlencode(text)
  return (text:gsub("[^%w%-._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end
local login_body = "username=" .. urlencode(os.getenv("EMAIL") or "") ..
  "&password=" .. urlencode(os.getenv("PASSWORD") or "")
local function login()
  return wrk.format(
    "POST", "/auth/login", {["Content-Type"] = "application/x-www-form-urlencoded"}, login_body)
end

local make = ({
  get = get, post = post, patch = patch, list = list, mix = mix, healthz = healthz,
  login = login,
})[scenario]

function request()
  return make()
end

-- One JSON line for bench/run.py.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p99_ms": %.3f, "non_2xx": %d, ' ..
    '"socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, e.status, e.connect + e.read + e.write + e.timeout))
end
