-- Takes the runner lease if it is free or already ours, and renews it.
-- KEYS[1] the lease (`tt:<town>:runner`), ARGV[1] this runner's holder
-- value, ARGV[2] TTL ms.
-- Returns false when this runner holds it now, else the holder's value.
local cur = redis.call('GET', KEYS[1])
if not cur or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return false
end
return cur
