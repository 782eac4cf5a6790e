-- wrk script for bench/api.sh: each connection waits `pause_ms` between requests, so the
-- request rate is about connections x 1000 / (pause_ms + latency) instead of "as fast as
-- possible" (wrk has no fixed-rate mode). The token comes from the CAUDAL_TOKEN variable.
local pause_ms = tonumber(os.getenv("PAUSE_MS") or "16")

function init(args)
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("CAUDAL_TOKEN")
end

function delay()
  return pause_ms
end
