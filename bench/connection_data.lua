-- An authenticated GET of connectionData: the same bearer token on every keep-alive connection.
-- bench/harness.py puts the access token in ENTRYWAY_BENCH_ACCESS_TOKEN (not on wrk's command line).
local token = os.getenv("ENTRYWAY_BENCH_ACCESS_TOKEN")
if not token or token == "" then
  error("ENTRYWAY_BENCH_ACCESS_TOKEN is not set; run bench/run.sh")
end

wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. token
