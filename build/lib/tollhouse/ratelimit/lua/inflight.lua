-- In-flight slots: per subject a sorted set of request ids scored by the expiry of their
-- lease (milliseconds since the Unix epoch, the Redis server's clock). Entries whose lease
-- has passed (their process died, or stopped renewing) are dropped before counting.
--
-- ARGV[1]   op: "take" | "give" | "renew"
-- ARGV[2]   member: the request id (take, give); ignored by renew
-- ARGV[3]   lease_ms (take, renew)
-- then      take: one cap per key (>= 1); renew: one member per key
-- KEYS      take, give: the subjects' sets; renew: one set per (key, member) pair
--
-- take:  if every key has fewer live entries than its cap, add member to each (score now +
--        lease) and return 0; else add nothing and return the 1-based index of the first full
--        key. Atomic: two processes never both take the last slot.
-- give:  remove member from each key; returns 0.
-- renew: push the lease of each (key, member) still present to now + lease; returns 0.
-- Every written key expires a lease after its last write: a set no process renews vanishes.

if redis.replicate_commands then
  pcall(redis.replicate_commands)
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local op = ARGV[1]
local member = ARGV[2]
local lease = tonumber(ARGV[3])

if op == 'take' then
  for i, key in ipairs(KEYS) do
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    if redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then
      return i
    end
  end
  for _, key in ipairs(KEYS) do
    redis.call('ZADD', key, now + lease, member)
    redis.call('PEXPIRE', key, lease)
  end
  return 0
end

if op == 'give' then
  for _, key in ipairs(KEYS) do
    redis.call('ZREM', key, member)
  end
  return 0
end

for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + lease, ARGV[3 + i])
  redis.call('PEXPIRE', key, lease)
end
return 0
