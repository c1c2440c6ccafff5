-- wrk requests for the users API and the OpenID Provider's endpoints.
-- SCENARIO: get, post, patch, list, mix (80 % reads), login (EMAIL, PASSWORD: a sign-in),
-- healthz (no database), or the provider's token_cc (client_credentials), token_refresh (each
-- answer's new refresh token used next) and userinfo (TOKEN: a person's access token);
-- USERS: how many users are seeded (ids 1..USERS); TOKEN: the bearer token, if any;
-- CLIENT_ID, CLIENT_SECRET: the OAuth client's; REFRESH_TOKENS: live refresh tokens, spaced,
-- shared out between the THREADS threads.
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

-- RFC 4648 base64, for HTTP Basic.
local function base64(text)
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local bits = text:gsub(".", function(c)
    local byte, out = c:byte(), ""
    for i = 7, 0, -1 do out = out .. math.floor(byte / 2 ^ i) % 2 end
    return out
  end) .. "0000"
  return bits:gsub("%d%d%d?%d?%d?%d?", function(six)
    if #six < 6 then return "" end
    local n = tonumber(six, 2)
    return alphabet:sub(n + 1, n + 1)
  end) .. ({"", "==", "="})[#text % 3 + 1]
end
local client = urlencode(os.getenv("CLIENT_ID") or "") .. ":" ..
  urlencode(os.getenv("CLIENT_SECRET") or "")  -- RFC 6749 §2.3.1
local oauth = {
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Authorization"] = "Basic " .. base64(client),
}
local function token_request(body) return wrk.format("POST", "/oauth/token", oauth, body) end
local function token_cc() return token_request("grant_type=client_credentials&scope=users%3Aread") end

-- This thread's live refresh tokens, first in first out: each answer's new one joins the end
-- (a refused one is lost; once none is left, requests fail and count as errors).
local live, first, last = {}, 1, 0
local function token_refresh()
  local refresh = live[first] or ""
  live[first], first = nil, math.min(first + 1, last + 1)
  return token_request("grant_type=refresh_token&refresh_token=" .. urlencode(refresh))
end
if scenario == "token_refresh" then  -- wrk reads the bodies only when response() exists
  function init(args)  -- this thread's share of REFRESH_TOKENS, none of another's
    local threads, n = tonumber(os.getenv("THREADS")), 0
    for refresh in (os.getenv("REFRESH_TOKENS") or ""):gmatch("%S+") do
      if n % threads == seed - 1 then last = last + 1; live[last] = refresh end
      n = n + 1
    end
  end
  function response(status, headers, body)
    local refresh = status == 200 and body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if refresh then last = last + 1; live[last] = refresh end
  end
end

local function userinfo() return wrk.format("GET", "/oauth/userinfo", headers()) end

local make = ({
  get = get, post = post, patch = patch, list = list, mix = mix, healthz = healthz,
  login = login, token_cc = token_cc, token_refresh = token_refresh, userinfo = userinfo,
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
