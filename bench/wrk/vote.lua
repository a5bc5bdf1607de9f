-- wrk script: votes on a thread's comments from many voters (bench/bigthreads.py runs it).
--
--   wrk -t1 -c64 -d6s -s bench/wrk/vote.lua http://127.0.0.1:PORT -- FILE SEED
--
-- FILE's first line holds the comment ids, space-separated; every further line is a voter id
-- from POST /api/voters. Each request is one voter's vote on one comment, both drawn at random:
-- up twice as often as down or withdraw (0), so votes are cast, changed and withdrawn as
-- readers do. SEED varies the draws from run to run. At the end one line of JSON says how
-- many requests were answered, how many were not 2xx or failed, and the latency.

local comments, voters = {}, {}
local values = {"1", "1", "-1", "0"}
local headers = {["Content-Type"] = "application/json"}

function init(args)
   local file = assert(io.open(args[1]))
   for id in file:read("*l"):gmatch("%d+") do
      comments[#comments + 1] = id
   end
   for line in file:lines() do
      if #line > 0 then
         voters[#voters + 1] = line
      end
   end
   file:close()
   math.randomseed(tonumber(args[2] or "1"))
end

function request()
   local comment = comments[math.random(#comments)]
   local body = '{"value":' .. values[math.random(#values)]
      .. ',"voter":"' .. voters[math.random(#voters)] .. '"}'
   return wrk.format("POST", "/api/comments/" .. comment .. "/vote", headers, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      '{"requests":%d,"seconds":%.3f,"failed":%d,"p50_ms":%.2f,"p99_ms":%.2f}\n',
      summary.requests, summary.duration / 1e6,
      e.status + e.connect + e.read + e.write + e.timeout,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
