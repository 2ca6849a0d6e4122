-- wrk script: blocking invoke of the hello action with a small JSON body.
-- AUTH is the base64 of uuid:key, passed in the environment.
wrk.method = "POST"
wrk.body = '{"name":"bench"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic " .. os.getenv("AUTH")

done = function(summary, latency, requests)
  io.write(string.format("RESULT requests/s=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
