-- A lease value no `tt run` wrote (not a JSON object with an `id`) is
-- deleted; a lease with no expiry gets one (ARGV[1] ms), so neither can
-- hold a town for ever. KEYS[1] the lease.
-- Returns {what was wrong ('unreadable' | 'no_expiry'), the value} or false.
local cur = redis.call('GET', KEYS[1])
if not cur then return false end
local ok, v = pcall(cjson.decode, cur)
if not ok or type(v) ~= 'table' or type(v.id) ~= 'string' then
  redis.call('DEL', KEYS[1])
  return { 'unreadable', cur }
end
if redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return { 'no_expiry', cur }
end
return false
