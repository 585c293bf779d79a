-- wrk script: POST the bodies of a file (one JSON document per line) in turn.
--   wrk -t1 -c32 -d10s --latency -s cycle.lua http://127.0.0.1:8181/v1/data/trino/allow -- single.txt
-- A "@QID@" in a body becomes a fresh Trino queryId on every request: the sidecar's cache must
-- not key on it. Requests are formatted per call; the constant-answer ceiling gets the same
-- script, so wrk's own cost is the same on both sides of the ratio.
--
-- Bodies never seen before (benchmarks/unseen_bodies.py): a line "WORD<TAB>BODY" is a template.
-- Request k of the run sends template k mod n as variant v = FIRST + floor(k / n) (FIRST, the
-- second argument, 0 by default): each "@C@" becomes WORD with the letters upper-cased where the
-- bits of 1 + v mod (2^letters - 1) are set, each "@G@" becomes "new-<v>". So the pair (body,
-- variant) repeats only after n * (2^letters - 1) requests over all runs that share the FIRST
-- sequence.
-- done() prints one line "BENCH_JSON {...}" that benchmarks/run.py parses.

local heads, tails, words, n, i, counter = {}, {}, {}, 0, 0, 0
local headers = { ["Content-Type"] = "application/json" }
local prefix = "20261122_000000_"
local first, sent = 0, 0

local created = 0
function setup(thread)
  thread:set("id", created)
  created = created + 1
end

function init(args)
  local file = assert(io.open(args[1], "r"), "cannot open " .. tostring(args[1]))
  for line in file:lines() do
    if #line > 0 then
      n = n + 1
      local word, template = line:match("^([^\t]*)\t(.*)$")
      if word then
        words[n], line = word, template
      end
      local at = line:find("@QID@", 1, true)
      if at then
        heads[n], tails[n] = line:sub(1, at - 1), line:sub(at + 5)
      else
        heads[n] = line
      end
    end
  end
  file:close()
  first = tonumber(args[2] or "0")
  -- Threads start at different offsets so that they do not send the same body in lockstep.
  i = (tonumber(wrk.thread:get("id")) or 0) * 7919 % n
  prefix = prefix .. (wrk.thread:get("id") or "0") .. "_"
end

-- `word` with its letters upper-cased where the bits of `mask` are set (letter 1: bit 0)
local function cased(word, mask)
  local out, bit = {}, 0
  for c in word:gmatch(".") do
    if c:match("%a") then
      if math.floor(mask / 2 ^ bit) % 2 == 1 then
        c = c:upper()
      end
      bit = bit + 1
    end
    out[#out + 1] = c
  end
  return table.concat(out)
end

local function variant(body, word)
  local v = first + math.floor(sent / n)
  sent = sent + 1
  local letters = #word:gsub("%A", "")
  body = body:gsub("@C@", cased(word, 1 + v % (2 ^ letters - 1)))
  return (body:gsub("@G@", "new-" .. v))
end

function request()
  i = i % n + 1
  local body = heads[i]
  if tails[i] then
    counter = counter + 1
    body = body .. prefix .. counter .. "_bench" .. tails[i]
  end
  if words[i] then
    body = variant(body, words[i])
  end
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
      .. '"p999_us":%d,"max_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
