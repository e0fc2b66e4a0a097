-- wrk script of bench/load.sh: households signing in and reading or changing their
-- registration, from many addresses behind a trusted proxy. Settings come from the
-- environment load.sh sets (LOAD_*); the invoice pairs are those of the demo town
-- (src/demo.rs: electricity 7359991 + 11 digits for customers 100001.., district heating
-- FV-nnnnnn for the first 1,500), which load.sh checks before it starts the load.

local tenant = os.getenv("LOAD_TENANT") or "alvstad"
local clients = tonumber(os.getenv("LOAD_CLIENTS") or "10000")
local right_share = tonumber(os.getenv("LOAD_RIGHT") or "0.8")
local sessions_file = os.getenv("LOAD_SESSIONS")
-- Shares of the requests, cumulative: API sign-in, page sign-in, registration read; the
-- rest changes the mobile number.
local api_signin = tonumber(os.getenv("LOAD_API_SIGNIN") or "0.60")
local page_signin = api_signin + tonumber(os.getenv("LOAD_PAGE_SIGNIN") or "0.10")
local reads = page_signin + tonumber(os.getenv("LOAD_READS") or "0.25")
local changes = os.getenv("LOAD_CHANGES") == "1"

local ELECTRICITY = 3500
local HEATING = 1500
-- Any well-formed token: the form check is a double submit, cookie against field.
local CSRF = "0123456789abcdef0123456789abcdef"

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local sessions = {}
counts = {}

function init(args)
  math.randomseed(os.time() * 1000 + id)
  if sessions_file then
    for line in io.lines(sessions_file) do
      local token, k = line:match("^(%S+) (%d+)$")
      if token then
        table.insert(sessions, { token = token, k = tonumber(k) })
      end
    end
  end
end

-- One of `clients` addresses in 10.0.0.0/8, as the proxy appends it.
local function client()
  local i = math.random(0, clients - 1) + 1
  return string.format("10.%d.%d.%d", math.floor(i / 65536) % 256, math.floor(i / 256) % 256, i % 256)
end

-- A facility of the demo town (index 0..4999): service, facility number, customer number.
local function facility(k)
  if k < ELECTRICITY then
    return "electricity", string.format("7359991%011d", k + 1), tostring(100001 + k)
  end
  local h = k - ELECTRICITY
  return "district_heating", string.format("FV-%06d", h + 1), tostring(100001 + h)
end

-- A right pair, or (1 - right_share of the time) a wrong one: half of those a mistyped
-- facility number that exists nowhere, half a real facility with a wrong customer number.
local function pair()
  local service, fac, cust = facility(math.random(0, ELECTRICITY + HEATING - 1))
  if math.random() >= right_share then
    if math.random() < 0.5 then
      fac = string.format("7359998%011d", math.random(0, 99999999))
    else
      cust = tostring(math.random(200000, 999999))
    end
  end
  return service, fac, cust
end

function request()
  local r = math.random()
  if r < api_signin or #sessions == 0 then
    local service, fac, cust = pair()
    return wrk.format("POST", "/api/v1/registration/session", {
      ["Content-Type"] = "application/json",
      ["X-Forwarded-For"] = client(),
    }, string.format('{"tenant":"%s","service":"%s","customer_number":"%s","facility_number":"%s"}',
      tenant, service, cust, fac))
  elseif r < page_signin then
    local service, fac, cust = pair()
    return wrk.format("POST", "/t/" .. tenant, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Cookie"] = "varsel_csrf=" .. CSRF,
      ["X-Forwarded-For"] = client(),
    }, string.format("csrf=%s&service=%s&customer_number=%s&facility_number=%s",
      CSRF, service, cust, fac))
  end
  local s = sessions[math.random(1, #sessions)]
  local headers = { ["Authorization"] = "Bearer " .. s.token, ["X-Forwarded-For"] = client() }
  if r < reads then
    return wrk.format("GET", "/api/v1/registration", headers)
  end
  -- The household's own number: set once, then set again unchanged, as a form resubmitted;
  -- with LOAD_CHANGES=1 every time another number (two taking turns), a real change that
  -- also tells the number it replaced.
  headers["Content-Type"] = "application/json"
  local number = 1000000 + s.k
  if changes then
    s.turn = not s.turn
    if s.turn then
      number = number + 1000000
    end
  end
  return wrk.format("PUT", "/api/v1/registration/phone", headers,
    string.format('{"phone":"+4670%07d"}', number))
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("counts")) do
      total[status] = (total[status] or 0) + n
    end
  end
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format("LOAD requests=%d seconds=%.2f rps=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("LOAD socket_errors connect=%d read=%d write=%d timeout=%d\n",
    e.connect, e.read, e.write, e.timeout))
  local codes = {}
  for status, _ in pairs(total) do table.insert(codes, status) end
  table.sort(codes)
  local line = "LOAD status"
  for _, status in ipairs(codes) do
    line = line .. string.format(" %d=%d", status, total[status])
  end
  io.write(line .. "\n")
end
