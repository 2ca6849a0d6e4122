-- wrk script: Lambda's Invoke API with a request signed once (SigV4) by bench/lambda_bench.py.
-- SIGV4_AUTHORIZATION and SIGV4_DATE come from the environment; the body is the one signed.
wrk.method = "POST"
wrk.body = '{"name":"bench"}'
wrk.headers["Authorization"] = os.getenv("SIGV4_AUTHORIZATION")
wrk.headers["X-Amz-Date"] = os.getenv("SIGV4_DATE")

done = function(summary, latency, requests)
  io.write(string.format("RESULT requests/s=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
