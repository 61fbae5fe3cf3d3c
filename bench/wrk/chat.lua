-- wrk script: POST a short chat completion (model from $BENCH_MODEL) and print one JSON line
-- with the run's figures. Latencies are wrk's HdrHistogram values in microseconds.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format(
  '{"model":"%s","messages":[{"role":"user","content":"Say hello"}],"max_tokens":16}',
  os.getenv("BENCH_MODEL") or "up/m")

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_s":%.3f,"rps":%.1f,"non2xx":%d,"connect_err":%d,"read_err":%d,' ..
    '"write_err":%d,"timeouts":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"mean":%.1f,"max":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max))
end
