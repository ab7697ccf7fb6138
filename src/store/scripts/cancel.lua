-- Cancels tasks: the one named on the command line first, then (for a
-- group) its descendants. Called by Store::cancel, which decided the
-- descendants from the graph; this script re-checks each status, so a task
-- that finished meanwhile stays finished.
-- ARGV[1] key prefix, then pairs (task id, reason).
-- Returns, per pair, {status before, 1 if cancelled else 0}; the status is
-- "" for a task that does not exist.
local prefix = ARGV[1]
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
local final = { completed = true, failed = true, cancelled = true }
local out = {}
for i = 2, #ARGV, 2 do
  local id, reason = ARGV[i], ARGV[i + 1]
  local key = prefix .. 'task:' .. id
  local cur = redis.call('HMGET', key, 'status', 'worker', 'attempt', 'assigned_to')
  local status, worker, attempt, assigned_to = cur[1], cur[2], cur[3] or '0', cur[4]
  if not status then
    out[#out + 1] = { '', 0 }
  elseif final[status] then
    out[#out + 1] = { status, 0 }
  else
    local who = ''
    if status == 'running' and worker then
      -- The worker stops that attempt's process; its finish report then
      -- finds the task cancelled and changes nothing.
      redis.call('LPUSH', prefix .. 'control:' .. worker,
        cjson.encode({ kind = 'stop', task = id, attempt = tonumber(attempt) or 0 }))
      who = worker
    elseif status == 'assigned' and assigned_to then
      -- Take the message out of the inbox so it stops holding a place in
      -- the agent's window (a worker would drop it at claim anyway).
      -- An empty agent is the town backlog.
      local inbox = assigned_to == '' and prefix .. 'backlog' or prefix .. 'inbox:' .. assigned_to
      for _, raw in ipairs(redis.call('LRANGE', inbox, 0, -1)) do
        local ok, m = pcall(cjson.decode, raw)
        if ok and type(m) == 'table' and m.kind == 'task' and m.task == id
          and tostring(m.attempt) == attempt then
          redis.call('LREM', inbox, 1, raw)
        end
      end
      who = assigned_to
    end
    redis.call('HSET', key, 'status', 'cancelled', 'reason', reason,
      'updated', now, 'finished', now)
    redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', '100000', '*',
      'kind', 'cancelled', 'task', id, 'agent', who, 'attempt', attempt,
      'at', now, 'from', status, 'reason', reason)
    out[#out + 1] = { status, 1 }
  end
end
return out
