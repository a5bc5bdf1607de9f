-- wrk script: the same request each time, from one of POOL client addresses in turn
-- (bench/wrk.py runs it for reads and counts).
--
--   wrk -t1 -c16 -d5s -s bench/wrk/request.lua http://127.0.0.1:PORT -- METHOD PATH [BODY] [POOL] [ENCODINGS]
--
-- The address (public: Remark42 skips private ones) goes in X-Forwarded-For, which the
-- servers believe from 127.0.0.1 only. Readers
-- of a real site come from many addresses; Remark42 limits each to 10 reads a second, so a
-- pool of 4,096 (the default) keeps every server's per-address limits in the path but never
-- the limit, without making a rate-limit entry per request. ENCODINGS, if given, is sent as
-- Accept-Encoding (as browsers do: "gzip, deflate, br, zstd"); wrk never decodes a body.

local method, path, body, pool, encodings
local counter = 0
local prepared = {}

function init(args)
   method = args[1] or "GET"
   path = args[2] or "/"
   body = args[3]
   if body == "" then body = nil end
   pool = tonumber(args[4] or "4096")
   encodings = args[5]
   for n = 0, pool - 1 do
      local headers = {["X-Forwarded-For"] = string.format("44.%d.%d.%d", 100 + math.floor(n / 65536) % 100, math.floor(n / 256) % 256, n % 256)}
      if body then headers["Content-Type"] = "application/json" end
      if encodings and encodings ~= "" then headers["Accept-Encoding"] = encodings end
      prepared[n] = wrk.format(method, path, headers, body)
   end
end

function request()
   counter = counter + 1
   return prepared[counter % pool]
end
