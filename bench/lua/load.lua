-- The one load script of `make bench`, for wrk (LuaJIT). POSTs JSON bodies read from a file:
--   wrk -s bench/lua/load.lua <url> -- <bodies file> <mode> <seed> <requests/s per thread, 0: as fast as it goes>
-- Modes:
--   fixed     the first line of the file, every request (a cached prediction)
--   distinct  the first line with its @N@ replaced by a number no other request of the run (or of
--             another run with another seed) uses: every request is a new feature vector (a miss)
--   zipf      one line of the file per request, line k drawn with probability ~ 1/k^1.1
-- With a rate, each thread sends on a fixed schedule (wrk2's idea, with wrk's 1 ms resolution):
-- a slow answer does not slow the schedule, so latency is measured at that offered rate.
-- done() prints one line, "WRKJSON {...}", that bench/load-generator.ts reads.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local next_id = 0
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local mode, lines, prefix, suffix, cdf, total, seed, counter, interval, next_slot

-- Set as wrk's delay() only when pacing (init below): wrk then calls it before each request after a
-- connection's first, and without it sends the next request at once.
local function paced_delay()
  local now = now_ms()
  if not next_slot or next_slot < now - 1000 then next_slot = now end
  local slot = next_slot
  next_slot = next_slot + interval
  local d = slot - now
  if d <= 0 then return 0 end
  return math.floor(d + 0.5)
end

function init(args)
  local file = assert(io.open(args[1], "r"))
  lines = {}
  for line in file:lines() do
    if #line > 0 then table.insert(lines, line) end
  end
  file:close()
  mode = args[2]
  seed = tonumber(args[3]) or 0
  local rate = tonumber(args[4]) or 0
  if rate > 0 then
    interval = 1000 / rate
    delay = paced_delay
  end
  counter = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if mode == "fixed" then
    wrk.body = lines[1]
  elseif mode == "distinct" then
    local at = assert(string.find(lines[1], "@N@", 1, true), "no @N@ in the body")
    prefix = string.sub(lines[1], 1, at - 1)
    suffix = string.sub(lines[1], at + 3)
  elseif mode == "zipf" then
    cdf = {}
    total = 0
    for k = 1, #lines do
      total = total + 1 / (k ^ 1.1)
      cdf[k] = total
    end
    math.randomseed(seed * 7919 + tid)
  else
    error("mode must be fixed, distinct or zipf, not " .. tostring(mode))
  end
end

function request()
  if mode == "fixed" then return wrk.format() end
  if mode == "distinct" then
    counter = counter + 1
    -- 4.SSSTCCCCCCCC: seed, thread, counter; 13 significant digits, exact in a double.
    local n = string.format("4.%03d%d%08d", seed % 1000, tid % 10, counter)
    return wrk.format(nil, nil, nil, prefix .. n .. suffix)
  end
  local x = math.random() * total
  local lo, hi = 1, #lines
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < x then lo = mid + 1 else hi = mid end
  end
  return wrk.format(nil, nil, nil, lines[lo])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"durationUs":%d,"bytes":%d,"connectErrors":%d,"readErrors":%d,"writeErrors":%d,"statusErrors":%d,"timeouts":%d,"p50Us":%d,"p90Us":%d,"p99Us":%d,"maxUs":%d,"meanUs":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
