-- Puts failed or cancelled tasks back to pending (`tt retry`). Called by
-- Store::retry with the task named on the command line and, for a group,
-- the descendants to run again; this script re-checks each one.
-- KEYS[1] the events stream, then the hash of each task; ARGV the task
-- ids, in the same order.
-- Returns, per id, the status before, or "" when it was left alone (not
-- failed or cancelled any more, removed from the file, or missing).
local events = KEYS[1]
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
local out = {}
for i, id in ipairs(ARGV) do
  local key = KEYS[i + 1]
  local cur = redis.call('HMGET', key, 'status', 'removed', 'attempt')
  local status = cur[1]
  if (status == 'failed' or status == 'cancelled') and cur[2] ~= '1' then
    -- The attempt counter is kept: the next dispatch makes it attempt + 1,
    -- so reports of the old attempt stay recognisably stale.
    redis.call('HDEL', key, 'error', 'exit_code', 'retry_at', 'finished', 'requeues')
    redis.call('HSET', key, 'status', 'pending', 'reason', 'retried from the command line',
      'updated', now)
    redis.call('XADD', events, 'MAXLEN', '~', '100000', '*',
      'kind', 'retry', 'task', id, 'agent', '', 'attempt', cur[3] or '0',
      'at', now, 'from', status)
    out[#out + 1] = status
  else
    out[#out + 1] = ''
  end
end
return out
