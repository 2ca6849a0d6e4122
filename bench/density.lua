-- wrk script: blocking invokes spread at random over N actions d0..d(N-1) (N: the script's
-- first argument). AUTH is the base64 of uuid:key, passed in the environment.
local n = 1
local prefix = "/api/v1/namespaces/_/actions/d"
local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Basic " .. os.getenv("AUTH"),
}

init = function(args)
  n = tonumber(args[1] or "1")
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

request = function()
  local i = math.random(0, n - 1)
  return wrk.format("POST", prefix .. i .. "?blocking=true&result=true", headers, '{"name":"bench"}')
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT requests/s=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
