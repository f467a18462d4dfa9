-- A client-credentials token request (client_secret_post), the same one on every keep-alive connection.
-- bench/harness.py puts the url-encoded form (client id, secret, scope) in ENTRYWAY_BENCH_TOKEN_FORM.
local form = os.getenv("ENTRYWAY_BENCH_TOKEN_FORM")
if not form or form == "" then
  error("ENTRYWAY_BENCH_TOKEN_FORM is not set; run bench/run.sh")
end

wrk.method = "POST"
wrk.body = form
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
