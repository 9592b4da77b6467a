-- wrk script: KillrVideo's body-less `POST /api/v1/videos/id/{id}/view`, the video
-- drawn with Zipf popularity like loadgen's (WRK_VIDEOS ids, exponent WRK_ZIPF;
-- 0 is uniform). At the end it writes one JSON line to stderr for benchstep:
-- requests, errors, duration and latency percentiles (closed loop: wrk measures
-- from each send, so these are service times, not latencies under a schedule).

local n = tonumber(os.getenv("WRK_VIDEOS") or "100000")
local s = tonumber(os.getenv("WRK_ZIPF") or "1")
local paths, cdf = {}, {}

local function init_ids()
  local acc = 0
  for k = 1, n do
    paths[k] = string.format("/api/v1/videos/id/%08x-0000-4000-8000-%012x/view", k, k * 7919)
    acc = acc + 1 / (k ^ s)
    cdf[k] = acc
  end
  for k = 1, n do cdf[k] = cdf[k] / acc end
end

init = function(args)
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
  init_ids()
end

request = function()
  local u, lo, hi = math.random(), 1, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return wrk.format("POST", paths[lo])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.stderr:write(string.format(
    '{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
