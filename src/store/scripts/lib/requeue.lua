-- How often in a row a task may be requeued (its worker fenced itself, or
-- died) before it is failed instead: a command that stalls or kills its
-- own worker would otherwise be requeued for ever. Shared by worker.lua
-- (recovery, registration) and finish.lua (fenced reports), which
-- store/worker.rs runs with this file put before them; a report of how an
-- attempt really ended starts the count again.
local MAX_REQUEUES = 3

-- Counts one more requeue of the task at `key`; true when that makes
-- MAX_REQUEUES in a row (the count then starts again).
local function requeues_exhausted(key)
  local n = (tonumber(redis.call('HGET', key, 'requeues')) or 0) + 1
  if n >= MAX_REQUEUES then
    redis.call('HDEL', key, 'requeues')
    return true
  end
  redis.call('HSET', key, 'requeues', tostring(n))
  return false
end
