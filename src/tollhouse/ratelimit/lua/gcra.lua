-- GCRA (Generic Cell Rate Algorithm, ATM Forum TM 4.0 "virtual scheduling"), all-or-nothing
-- over several keys, in one atomic step with the Redis server's clock.
--
-- KEYS[i]       TAT key of cell i: integer microseconds since the Unix epoch (missing = now)
-- ARGV[1]       mode: "hit" (all-or-nothing consume) | "test" (check only) | "force" (consume)
-- ARGV[2i]      increment_us of cell i = cost * emission interval, whole microseconds, >= 0
-- ARGV[2i+1]    window_us of cell i = tolerance + emission interval = the period, > 0
--
-- cell i conforms iff max(TAT_i, now) + increment_i - now <= window_i
-- Returns {allowed (1|0), now_us, tat_1, ..., tat_n}; tat_i = max(TAT_i, now) before the
-- increment. Written keys expire when their TAT passes (a past TAT reads like a missing key).

local mode = ARGV[1]
local n = #KEYS
local increment = {}
local window = {}
for i = 1, n do
  increment[i] = tonumber(ARGV[2 * i])
  window[i] = tonumber(ARGV[2 * i + 1])
end

-- Redis < 5 needs effects replication to write after the non-deterministic TIME.
if redis.replicate_commands then
  pcall(redis.replicate_commands)
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local tats = {}
local allowed = 1
for i = 1, n do
  local stored = tonumber(redis.call('GET', KEYS[i]))
  local tat = now
  if stored and stored > now then
    tat = stored
  end
  tats[i] = tat
  if tat + increment[i] - now > window[i] then
    allowed = 0
  end
end

if mode == 'force' or (mode == 'hit' and allowed == 1) then
  for i = 1, n do
    local new_tat = tats[i] + increment[i]
    if new_tat > now then
      redis.call('SET', KEYS[i], string.format('%.0f', new_tat),
        'PX', string.format('%.0f', math.ceil((new_tat - now) / 1000)))
    end
  end
end

local reply = {allowed, now}
for i = 1, n do
  reply[i + 2] = tats[i]
end
return reply
