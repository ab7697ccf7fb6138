-- Replaces the runner lease if it still holds ARGV[1] (a holder known to
-- be dead), with ARGV[2] for ARGV[3] ms. KEYS[1] the lease.
-- Returns 1 when it did, 0 when the lease changed meanwhile.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
