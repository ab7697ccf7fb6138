-- Releases the runner lease if it still holds ARGV[1] (this runner's
-- holder value): a lease another runner took over is left alone.
-- KEYS[1] the lease. Returns 1.
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
