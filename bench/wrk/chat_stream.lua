-- wrk script: POST a small streaming chat completion ("stream": true, with include_usage
-- unless BENCH_STREAM is "plain").
-- Environment (all optional):
--   BENCH_STREAM "usage" (default) asks for the usage chunk, "plain" does not
--   BENCH_PATH   request path            (default /v1/chat/completions)
--   BENCH_MODEL  model id in the body    (default bench-model)
--   BENCH_KEY    bearer token; sent as "Authorization: Bearer <key>" when set
wrk.method = "POST"
wrk.path = os.getenv("BENCH_PATH") or "/v1/chat/completions"
local model = os.getenv("BENCH_MODEL") or "bench-model"
local body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"Say hello in five words."}],"max_tokens":16,"stream": true'
if os.getenv("BENCH_STREAM") ~= "plain" then
  body = body .. ',"stream_options":{"include_usage":true}'
end
wrk.body = body .. '}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "text/event-stream"
local key = os.getenv("BENCH_KEY")
if key ~= nil and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

-- No response() callback on purpose: it makes wrk hand every answer to Lua and halves
-- its own speed. wrk already prints "Non-2xx or 3xx responses: N", which the bench reads.
