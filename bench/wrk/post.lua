-- wrk script: a POST per request, each with its own body (bench/wrk.py runs it).
--
--   wrk -t1 -c16 -d5s -s bench/wrk/post.lua http://127.0.0.1:PORT -- \
--       KIND URI THREADS OFFSET ORIGIN [TOKEN]
--
-- KIND is "kibitz" (POST /api/comments, JSON with the uri), "isso" (POST /new?uri=…) or
-- "remark42" (POST /api/v1/comment, JSON with a locator, signed in with TOKEN, a JWT of an
-- anonymous login sent as X-JWT).
-- URI is the thread's path; with THREADS > 0 it gets "-<n mod THREADS>" appended, spreading
-- the comments over that many threads. OFFSET keeps runs apart: every request of every run
-- comes from its own client address (X-Forwarded-For, believed from 127.0.0.1 only when the
-- server trusts that proxy) and carries its own text, as a site's readers would send them.

local kind, uri, threads, offset, origin, token
local counter = 0

function init(args)
   kind = args[1] or "kibitz"
   uri = args[2] or "/bench/post"
   threads = tonumber(args[3] or "0")
   offset = tonumber(args[4] or "0")
   origin = args[5] or ""
   token = args[6] or ""
end

local function address(n)
   return string.format("44.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
end

-- About 300 characters of the rich text readers write: emphasis, a link, a list, a quote.
local function text(n)
   return "Comment " .. n .. ": I read this twice and *mostly* agree.\\n\\n"
      .. "> measure before you optimise\\n\\n"
      .. "The part about caching reminded me of https://example.com/notes/" .. n
      .. " which says the same. Three things:\\n\\n- round trips\\n- sanitising\\n"
      .. "- publishing\\n\\nThanks for writing it up, **really** useful."
end

function request()
   counter = counter + 1
   local n = offset + counter
   local target = uri
   if threads > 0 then
      target = uri .. "-" .. (n % threads)
   end
   local headers = {["Content-Type"] = "application/json", ["X-Forwarded-For"] = address(n)}
   if kind == "remark42" then
      headers["X-JWT"] = token
      return wrk.format("POST", "/api/v1/comment?site=remark", headers, string.format(
         '{"text":"%s","title":"Bench","locator":{"site":"remark","url":"%s"}}', text(n), target))
   end
   local body = string.format(
      '{"author":"Reader %d","email":"reader%d@example.org","text":"%s","title":"Bench"',
      n, n, text(n))
   if kind == "isso" then
      return wrk.format("POST", "/new?uri=" .. target, headers, body .. "}")
   end
   headers["Origin"] = origin
   return wrk.format("POST", "/api/comments", headers, body .. ',"uri":"' .. target .. '"}')
end
