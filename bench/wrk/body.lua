-- wrk script: the same POST with a JSON body on every request (Isso's counts).
--
--   wrk -t1 -c16 -d5s -s bench/wrk/body.lua URL -- PATH BODY

local prepared

function init(args)
   prepared = wrk.format("POST", args[1], {["Content-Type"] = "application/json"}, args[2])
end

function request()
   return prepared
end
