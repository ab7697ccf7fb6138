-- Recovers the work of workers whose heartbeat expired (or that stopped
-- leaving work behind). Called by Store::recover for each candidate.
-- ARGV[1] key prefix, ARGV[2..] worker ids.
-- A task a dead worker was running goes back to `pending` (the next
-- dispatch raises its attempt, so a late report of the old attempt is
-- rejected); a message it had taken but not started goes back to the head
-- of its inbox. A worker whose heartbeat is back is left alone: a healthy
-- long-running task is never requeued.
-- Returns {worker, requeued, returned, ...} for each worker recovered.
local prefix = ARGV[1]
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
local out = {}
for i = 2, #ARGV do
  local worker = ARGV[i]
  if redis.call('EXISTS', prefix .. 'alive:' .. worker) == 0 then
    local agent_key = prefix .. 'agent:' .. worker
    local claimed = prefix .. 'claimed:' .. worker
    local state = redis.call('HGET', agent_key, 'state')
    local requeued, returned = 0, 0
    local raw = redis.call('RPOP', claimed)
    while raw do
      local ok, msg = pcall(cjson.decode, raw)
      if ok and type(msg) == 'table' and msg.kind == 'task' and type(msg.task) == 'string' then
        local key = prefix .. 'task:' .. msg.task
        local cur = redis.call('HMGET', key, 'status', 'worker', 'assigned_to', 'attempt')
        if cur[1] == 'running' and cur[2] == worker then
          local reason = 'requeued: worker `' .. worker .. '` died during attempt ' .. (cur[4] or '?')
          redis.call('HSET', key, 'status', 'pending', 'reason', reason, 'updated', now)
          redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', '100000', '*',
            'kind', 'requeued', 'task', msg.task, 'agent', worker, 'attempt', cur[4] or '',
            'at', now, 'reason', reason)
          requeued = requeued + 1
        elseif cur[1] == 'assigned' and cur[3] then
          redis.call('LPUSH', prefix .. 'inbox:' .. cur[3], raw)
          returned = returned + 1
        end
      end
      raw = redis.call('RPOP', claimed)
    end
    if state ~= 'stopped' and state ~= 'dead' then
      redis.call('HSET', agent_key, 'state', 'dead', 'died', now)
      redis.call('HDEL', agent_key, 'task', 'attempt')
      redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', '100000', '*',
        'kind', 'agent_dead', 'task', '', 'agent', worker, 'attempt', '', 'at', now)
    end
    if state ~= 'dead' or requeued + returned > 0 then
      out[#out + 1] = worker
      out[#out + 1] = requeued
      out[#out + 1] = returned
    end
  end
end
return out
