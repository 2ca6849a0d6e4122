-- wrk script for bench/workflows.sh: POSTs BODY (environment) with the key in AUTH, and counts
-- the answers that are not a 200 holding CHECK (environment), e.g. a workflow execution that
-- did not end SUCCEEDED within its blocking start.
wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic " .. os.getenv("AUTH")
local check = os.getenv("CHECK")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, check, 1, true) then
    bad = bad + 1
  end
end

done = function(summary, latency, requests)
  local wrong = 0
  for _, t in ipairs(threads) do
    wrong = wrong + t:get("bad")
  end
  io.write(string.format("RESULT requests/s=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f errors=%d wrong=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    wrong))
end
