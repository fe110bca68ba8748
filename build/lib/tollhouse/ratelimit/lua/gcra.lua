-- GCRA (Generic Cell Rate Algorithm, ATM Forum TM 4.0 "virtual scheduling"): one or more
-- decisions, each all-or-nothing over its own keys, in one atomic step with the Redis
-- server's clock. Decisions run in order, each seeing the writes of those before it: the same
-- as one script call per decision at the same instant.
--
-- ARGV[1]       D, the number of decisions
-- then, per decision d:
--   mode          "hit" (all-or-nothing consume) | "test" (check only) | "force" (consume)
--   n             its number of cells (>= 1)
--   n pairs       increment_us (= cost * emission interval, whole microseconds, >= 0; may be
--                 negative in "force" mode: a refund) and
--                 window_us (= tolerance + emission interval = the period, > 0) per cell
-- KEYS          every decision's TAT keys in the same order (integer microseconds since
--               the Unix epoch; missing = now)
--
-- cell i conforms iff max(TAT_i, now) + increment_i - now <= window_i
-- Returns {now_us, then per decision: allowed (1|0), tat_1, ..., tat_n}; tat_i = max(TAT_i,
-- now) before the increment. Written keys expire when their TAT passes (a past TAT reads like
-- a missing key); a key refunded back to now or before is deleted.

-- Redis < 5 needs effects replication to write after the non-deterministic TIME.
if redis.replicate_commands then
  pcall(redis.replicate_commands)
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

-- Every key is read before anything is written, so a failing read (a key of another type)
-- ends the script with nothing written. Later decisions see earlier ones through `tat`.
local tat = {}
for i = 1, #KEYS do
  if tat[KEYS[i]] == nil then
    local stored = tonumber(redis.call('GET', KEYS[i]))
    if stored and stored > now then
      tat[KEYS[i]] = stored
    else
      tat[KEYS[i]] = now
    end
  end
end

local written = {}
local reply = {now}
local arg = 2
local key = 1
for _ = 1, tonumber(ARGV[1]) do
  local mode = ARGV[arg]
  local n = tonumber(ARGV[arg + 1])
  arg = arg + 2
  local increment = {}
  local tats = {}
  local allowed = 1
  for i = 1, n do
    increment[i] = tonumber(ARGV[arg])
    local window = tonumber(ARGV[arg + 1])
    arg = arg + 2
    tats[i] = tat[KEYS[key + i - 1]]
    if tats[i] + increment[i] - now > window then
      allowed = 0
    end
  end

  if mode == 'force' or (mode == 'hit' and allowed == 1) then
    for i = 1, n do
      local name = KEYS[key + i - 1]
      tat[name] = math.max(tats[i] + increment[i], now)
      written[name] = true
    end
  end

  reply[#reply + 1] = allowed
  for i = 1, n do
    reply[#reply + 1] = tats[i]
  end
  key = key + n
end

for name in pairs(written) do
  local new_tat = tat[name]
  if new_tat > now then
    redis.call('SET', name, string.format('%.0f', new_tat),
      'PX', string.format('%.0f', math.ceil((new_tat - now) / 1000)))
  else
    redis.call('DEL', name)
  end
end
return reply
