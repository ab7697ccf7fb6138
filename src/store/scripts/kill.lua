-- Asks workers to shut down (`tt kill`). Called by Store::kill with the
-- worker ids the command resolved.
-- KEYS[1] the events stream, then for each worker its agent hash, its
-- heartbeat key and its control list; ARGV the worker ids, in the same
-- order.
-- Returns, per worker, what happened: "killed", "missing" (no agent
-- hash), "stopped" (already) or "dead" (no heartbeat: nobody would read
-- the message, and a restarted worker of that id must not get it).
local events = KEYS[1]
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
local out = {}
for i, w in ipairs(ARGV) do
  local key, alive, control = KEYS[3 * i - 1], KEYS[3 * i], KEYS[3 * i + 1]
  local cur = redis.call('HMGET', key, 'state', 'task', 'attempt', 'id')
  if not cur[1] and not cur[4] then
    out[#out + 1] = 'missing'
  elseif cur[1] == 'stopped' then
    out[#out + 1] = 'stopped'
  elseif redis.call('EXISTS', alive) == 0 then
    out[#out + 1] = 'dead'
  else
    -- At the head, before any stop messages still queued: shutdown stops
    -- whatever runs anyway.
    redis.call('LPUSH', control, '{"kind":"shutdown"}')
    redis.call('HSET', key, 'state', 'stopping')
    redis.call('XADD', events, 'MAXLEN', '~', '100000', '*',
      'kind', 'killed', 'task', cur[2] or '', 'agent', w, 'attempt', cur[3] or '',
      'at', now)
    out[#out + 1] = 'killed'
  end
end
return out
