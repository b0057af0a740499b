-- wrk script: HTTP/1.1 pipelining, DEPTH requests per write (default 16).
--   wrk -s scripts/pipeline.lua http://127.0.0.1:8080/ [-- DEPTH]
-- The whole batch is built once in init() and returned by request() on every write.
-- wrk parses the string returned by request() when the thread starts and counts the
-- requests in it (its `pipeline` depth); each connection then writes the batch, counts
-- every HTTP response it parses as one request, and writes the next batch only after
-- all DEPTH responses arrived. No response() function is defined on purpose: wrk would
-- then call into Lua for every response, which costs throughput and is not needed.
-- Latency is recorded once per batch (write of the batch -> last of its responses).
-- BODY_BYTES=N in the environment makes every request a POST with an N-byte body
-- (large inputs: with DEPTH 1, one request spans many receive buffers).
-- PACE_MS=N makes each connection wait N ms after a batch's last response
-- before it writes the next: a fixed offered load below what the server can
-- do, instead of as fast as it answers.
local depth = 16

init = function(args)
  local n = tonumber(args[1] or "")   -- args[0] is the URL, args[1] the first after it
  if n ~= nil and n >= 1 then depth = n end
  local body = tonumber(os.getenv("BODY_BYTES") or "")
  if body ~= nil then
    wrk.method = "POST"
    wrk.body = string.rep("x", body)
  end
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format(nil, nil)   -- method, path, headers, body from the command line
  end
  req = table.concat(r)
end

request = function()
  return req
end

local pace = tonumber(os.getenv("PACE_MS") or "")
if pace ~= nil and pace > 0 then
  delay = function()   -- wrk calls it before each write: milliseconds to wait
    return pace
  end
end
