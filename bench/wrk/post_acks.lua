-- wrk script: post.lua's requests, unchanged, and a line per acknowledged comment.
--
--   wrk -t1 -c16 -d5s -s bench/wrk/post_acks.lua http://127.0.0.1:PORT -- \
--       KIND URI THREADS OFFSET ORIGIN FILE
--
-- The first five arguments are post.lua's. For every 201 answer, "ID SECONDS" is appended to
-- FILE: the comment's id and the wall-clock time the answer arrived (clock_gettime through
-- LuaJIT's ffi; Lua's own clocks have whole seconds or CPU time only). bench/webhooks.py uses
-- the ids to check that every acknowledged comment reached every receiver, and the times for
-- the latency from the POST's answer to the receiver.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "post.lua")

local ffi = require("ffi")
ffi.cdef [[
   typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
   int clock_gettime(int clock, bench_timespec *now);
]]
local CLOCK_REALTIME = 0
local clock = ffi.new("bench_timespec")

local post_init = init
local out

function init(args)
   post_init(args)
   out = assert(io.open(args[6], "a"))
   out:setvbuf("line")
end

function response(status, headers, body)
   if status == 201 then
      ffi.C.clock_gettime(CLOCK_REALTIME, clock)
      local id = body:match('"id":(%d+)')
      out:write(id, " ", tonumber(clock.tv_sec), ".", string.format("%09d", tonumber(clock.tv_nsec)), "\n")
   end
end
