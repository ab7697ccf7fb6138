-- Moves one town's keys from the old layout (`tt:<town>:…`) to the
-- hash-tagged one (`tt:{<town>}:…`), all or nothing: nothing moves while a
-- runner of an older tt holds the old lease, or while any new name is
-- taken already. RENAME keeps each key's value, type and TTL.
-- KEYS[1] the old runner lease, then the n old keys (the old workers'
-- heartbeats first), then their n new names in the same order. ARGV[1]
-- 'move', or 'check' (move nothing); ARGV[2] how many of the old keys are
-- heartbeats: a worker of the older tt still beating would go on writing
-- the old layout after the move.
-- Returns {'lease', holder} when the old lease is held; {'worker', key,
-- holder} while an old worker's heartbeat lasts;
-- {'conflict', count, old, new, …} (the first pairs whose new name
-- exists) when nothing was moved because of them; else {'moved', count}
-- (or, for 'check', the count that would move). A key gone since the
-- caller listed it (a heartbeat that expired) is skipped.
local lease = redis.call('TYPE', KEYS[1]).ok
if lease ~= 'none' then
  local holder = 'a ' .. lease
  if lease == 'string' then
    holder = redis.call('GET', KEYS[1])
  end
  return {'lease', holder}
end
for i = 1, tonumber(ARGV[2]) or 0 do
  if redis.call('TYPE', KEYS[1 + i]).ok == 'string' then
    return {'worker', KEYS[1 + i], redis.call('GET', KEYS[1 + i])}
  end
end
local n = (#KEYS - 1) / 2
if n ~= math.floor(n) then
  return redis.error_reply('migrate.lua: KEYS must be the lease, n old keys and n new keys')
end
local present, conflicts, clashes = {}, {}, 0
for i = 1, n do
  local old, new = KEYS[1 + i], KEYS[1 + n + i]
  if redis.call('EXISTS', old) == 1 then
    if redis.call('EXISTS', new) == 1 then
      clashes = clashes + 1
      if clashes <= 10 then
        conflicts[#conflicts + 1] = old
        conflicts[#conflicts + 1] = new
      end
    else
      present[#present + 1] = i
    end
  end
end
if clashes > 0 then
  local reply = {'conflict', clashes}
  for _, k in ipairs(conflicts) do
    reply[#reply + 1] = k
  end
  return reply
end
if ARGV[1] == 'move' then
  for _, i in ipairs(present) do
    redis.call('RENAME', KEYS[1 + i], KEYS[1 + n + i])
  end
end
return {'moved', #present}
